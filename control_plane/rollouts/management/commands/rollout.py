"""``manage.py rollout start|pause|resume|abort|rollback|status``: staged rollouts from a shell."""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from control_plane.errors import error_messages
from control_plane.rollouts.management.rollout_options import (
    add_rollout_options,
    add_wait_option,
    rollout_settings,
    wait_until_delivered,
)
from control_plane.rollouts.models import Rollout
from control_plane.rollouts.selectors import find_version, rollout_summary
from control_plane.rollouts.services import (
    abort_rollout,
    create_rollout,
    pause_rollout,
    resume_rollout,
    roll_back_rollout,
)
from control_plane.rollouts.targets import parse_target
from control_plane.signing import SigningKeyError

ACTIONS = {
    "pause": pause_rollout,
    "resume": resume_rollout,
    "abort": abort_rollout,
    "rollback": roll_back_rollout,
}


class Command(BaseCommand):
    help = "Starts, pauses, resumes, aborts or rolls back a rollout, or prints its status."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        start = actions.add_parser("start", help="roll an approved version out in waves")
        start.add_argument("plugin")
        start.add_argument("version")
        start.add_argument("target", help="all, tag:<tag> or device:<name or id>[,…]")
        add_rollout_options(start)
        add_wait_option(start)
        for name in ACTIONS:
            actions.add_parser(name).add_argument("id", type=int)
        actions.add_parser("status", help="as JSON").add_argument("id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "start":
                version = find_version(options["plugin"], options["version"])
                target = parse_target(options["target"])
                rollout = create_rollout(
                    version=version,
                    target=target.kind,
                    tag=target.tag,
                    devices=target.devices,
                    **rollout_settings(options),
                )
                if options["wait_delivered"] is not None:
                    rollout = wait_until_delivered(rollout, options["wait_delivered"])
            else:
                found = Rollout.objects.filter(pk=options["id"]).first()
                if found is None:
                    raise CommandError(f"no rollout #{options['id']}")
                rollout = found
                if options["action"] in ACTIONS:
                    rollout = ACTIONS[options["action"]](rollout=rollout)
        except ValidationError as exc:
            raise CommandError("; ".join(error_messages(exc))) from None
        except SigningKeyError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(json.dumps(rollout_summary(rollout), indent=2, default=str))
