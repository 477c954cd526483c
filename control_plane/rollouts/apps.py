from django.apps import AppConfig


class RolloutsConfig(AppConfig):
    name = "control_plane.rollouts"
    label = "rollouts"
    verbose_name = "Rollouts"
