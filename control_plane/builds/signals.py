"""What the builds app announces; rollouts reacts, builds never calls it."""

from django.dispatch import Signal

artifacts_signed = Signal()
"""Sent after the commit that signed new compiled artifacts of an approved ``version``:
devices that should run it can now get its machine code."""
