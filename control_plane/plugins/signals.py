"""What the plugins app announces; other apps (rollouts) react, plugins never calls them."""

from django.dispatch import Signal

version_approved = Signal()
"""Sent after the commit of an approval, with ``version``: the version can now be rolled out."""
