"""Artifact bytes in the database, so every app server reaches them."""
