"""Rollouts: which approved plugin versions go to which devices, as signed desired states."""
