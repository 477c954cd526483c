from django.apps import AppConfig


class BuildsConfig(AppConfig):
    name = "control_plane.builds"
    label = "builds"
    verbose_name = "Builds"
