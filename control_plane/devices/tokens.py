"""Bearer secrets: generated here, shown once, stored only as their SHA-256."""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    """A fresh 256-bit secret, URL-safe."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What the database keeps: the SHA-256 of the token, hex."""
    return hashlib.sha256(token.encode()).hexdigest()
