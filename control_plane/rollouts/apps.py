from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    name = "control_plane.rollouts"
    label = "rollouts"
    verbose_name = "Rollouts"

    def ready(self) -> None:
        from control_plane.rollouts.receivers import connect

        connect()
