"""Durable state on the device: atomic file writes and the plugins' key-value stores."""
