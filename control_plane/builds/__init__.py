"""Compiled artifacts: each checked plugin version compiled once per device class, in jobs."""
