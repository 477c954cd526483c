"""What the devices app announces; rollouts reacts, devices never calls it.

Each is sent inside the transaction that made the change, so a receiver's writes (a new
signed desired state) commit or roll back with it, and the caller sees them on return.
"""

from django.dispatch import Signal

device_enrolled = Signal()
"""``device``: a new device; it should get what the fleet's standing assignments give it."""

device_retagged = Signal()
"""``device``: its tags changed, so assignments to a tag may now cover it."""

engine_changed = Signal()
"""``device``: it reports another engine key, so other compiled artifacts fit it."""

device_ahead = Signal()
"""``device``: it accepted a desired-state sequence above the one on record (the database
was restored from an older backup), which it would never go below; its desired state must
be signed again above that (its envelope is cleared and its sequence raised to match)."""

heartbeat_recorded = Signal()
"""``device_id``: sent after the write, only for a device a running rollout waits on
(``Device.in_rollout``), so a fleet with no rollout under way pays nothing for it."""
