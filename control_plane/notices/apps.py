from django.apps import AppConfig


class NoticesConfig(AppConfig):
    name = "control_plane.notices"
    label = "notices"
    verbose_name = "Notices"

    def ready(self) -> None:
        from control_plane.notices.receivers import connect

        connect()
