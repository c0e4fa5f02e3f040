"""The browser demo (``df2net serve``): a Gradio page over :class:`df2net.Reconstructor`.

Needs the optional ``web`` extra (``pip install "df2net[web]"``); nothing else in df2net imports
this package, so the core works without Gradio. :mod:`df2net.web.app` gathers the demo (its
rooms: ``pictures``, ``work``, ``handlers``, ``page``), :mod:`df2net.web.cli` adds the ``serve``
subcommand.
"""
