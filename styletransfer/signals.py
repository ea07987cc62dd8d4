"""Signals styletransfer sends (their receivers live in receivers.py)."""

from django.dispatch import Signal

# Sent with `style` when a style's embedding was (re)computed: recommenders can refit.
style_embedding_updated = Signal()
