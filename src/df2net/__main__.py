"""``python -m df2net``: the same as the ``df2net`` command."""

from df2net.cli import main

raise SystemExit(main())
