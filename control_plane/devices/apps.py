from django.apps import AppConfig


class DevicesConfig(AppConfig):
    name = "control_plane.devices"
    label = "devices"
    verbose_name = "Devices"
