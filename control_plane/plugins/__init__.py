"""Plugins: uploaded versions, validated against the contract, approved, signed and stored."""
