"""``manage.py publish_plugin <folder or bundle.zip> [--approve] [--rollout|--assign TARGET]``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from control_plane.errors import error_messages
from control_plane.plugins.choices import VersionStatus
from control_plane.plugins.models import PluginVersion
from control_plane.plugins.services import (
    approve_plugin_version,
    published_before,
    upload_plugin_version,
)
from control_plane.plugins.uploads import MANIFEST_NAME
from control_plane.rollouts.management.rollout_options import (
    add_rollout_options,
    add_wait_option,
    rollout_settings,
    wait_until_delivered,
)
from control_plane.rollouts.services import assign_now, create_rollout
from control_plane.rollouts.targets import parse_target
from control_plane.signing import SigningKeyError
from fleet_common.errors import ManifestError
from fleet_common.manifest import load_manifest

CHECK_WAIT_S = 600.0
"""A check is one native compile: seconds, unless the worker is busy or down."""
POLL_S = 0.1


class Command(BaseCommand):
    help = (
        "Uploads a built plugin (a folder with manifest.toml and its component, or a zip "
        "bundle) through the same checks as the admin; optionally approves it and rolls it out."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("source", type=Path, help="plugin folder or .zip bundle")
        parser.add_argument("--approve", action="store_true", help="approve and sign it")
        parser.add_argument(
            "--rollout",
            metavar="TARGET",
            help="then roll it out in waves to all, tag:<tag> or device:<name>[,…] "
            "(implies --approve)",
        )
        parser.add_argument(
            "--assign",
            metavar="TARGET",
            help="then ship it to the whole target at once, one wave, no gates (implies --approve)",
        )
        add_rollout_options(parser)
        add_wait_option(parser, "--wait-delivered")
        parser.add_argument("--user", help="record this user as uploader and approver")
        parser.add_argument(
            "--wait",
            type=float,
            default=CHECK_WAIT_S,
            metavar="SECONDS",
            help="how long to wait for the background check before approving",
        )
        parser.add_argument(
            "--skip-existing",
            action="store_true",
            help="succeed without changes if this exact version was published before",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user {options['user']!r}")
        try:
            if options["assign"] and options["rollout"]:
                raise CommandError("use --rollout or --assign, not both")
            named = options["rollout"] or options["assign"]
            target = parse_target(named) if named else None
            upload = self._read(options["source"])
            if options["skip_existing"] and (existing := published_before(**upload)):
                self.stdout.write(
                    f"{existing} was published before (sha256 {existing.sha256[:12]})"
                )
                return
            version = upload_plugin_version(**upload, uploaded_by=user)
            self.stdout.write(f"uploaded {version} (sha256 {version.sha256[:12]})")
            if options["approve"] or target is not None:
                version = self._checked(version, options["wait"])
                version = approve_plugin_version(version=version, approved_by=user)
                self.stdout.write(f"approved {version} as serial {version.serial}")
            if target is not None:
                common = dict(
                    version=version,
                    target=target.kind,
                    tag=target.tag,
                    devices=target.devices,
                    created_by=user,
                )
                if options["assign"]:
                    rollout = assign_now(**common)  # type: ignore[arg-type]
                else:
                    rollout = create_rollout(**common, **rollout_settings(options))  # type: ignore[arg-type]
                if options["wait_delivered"] is not None:
                    rollout = wait_until_delivered(rollout, options["wait_delivered"])
                self.stdout.write(f"started {rollout}: {rollout.get_status_display()}")
        except ValidationError as exc:
            raise CommandError("; ".join(error_messages(exc))) from None
        except SigningKeyError as exc:
            raise CommandError(str(exc)) from None

    def _checked(self, version: PluginVersion, wait_s: float) -> PluginVersion:
        """The version once the worker checked it; raises CommandError if it is invalid."""
        started = time.monotonic()
        while version.status == VersionStatus.CHECKING:
            if time.monotonic() - started > wait_s:
                raise CommandError(
                    f"{version} is still being checked after {wait_s:g} s: is the job worker "
                    "(manage.py qcluster) running? Approve it in the admin once it is checked."
                )
            time.sleep(POLL_S)
            version.refresh_from_db()
        if version.status == VersionStatus.INVALID:
            raise CommandError(f"{version} is invalid: {version.problem}")
        self.stdout.write(f"checked {version} in {time.monotonic() - started:.1f} s")
        return version

    @staticmethod
    def _read(source: Path) -> dict[str, Any]:
        try:
            if source.is_file():
                return {"bundle": source.read_bytes()}
            manifest_path = source / MANIFEST_NAME
            manifest = load_manifest(manifest_path)
            return {
                "component": (source / manifest.component).read_bytes(),
                "manifest_text": manifest_path.read_text(encoding="utf-8"),
            }
        except ManifestError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"cannot read {source}: {exc}") from None
