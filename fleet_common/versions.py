"""Semantic version precedence (semver.org, section 11), for refusing downgrades."""

from __future__ import annotations

import re

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?$")

Identifier = tuple[int, int, str]
VersionKey = tuple[int, int, int, int, tuple[Identifier, ...]]


def version_key(version: str) -> VersionKey:
    """A sort key: ``1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-beta < 1.0.0 < 1.0.1``."""
    match = _SEMVER.match(version)
    if match is None:
        raise ValueError(f"{version!r} is not a semantic version like 1.2.0")
    major, minor, patch, prerelease = match.groups()
    if prerelease is None:
        return int(major), int(minor), int(patch), 1, ()
    identifiers = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part) for part in prerelease.split(".")
    )
    return int(major), int(minor), int(patch), 0, identifiers
