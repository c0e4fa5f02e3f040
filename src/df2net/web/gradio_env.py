"""Gradio, imported with its analytics and server-side rendering off (it reads both settings once,
when it is first imported); every module of the demo takes ``gr`` from here."""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("GRADIO_SSR_MODE", "False")

import gradio as gr  # noqa: E402

__all__ = ["gr"]
