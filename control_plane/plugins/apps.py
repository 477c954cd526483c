from django.apps import AppConfig


class PluginsConfig(AppConfig):
    name = "control_plane.plugins"
    label = "plugins"
    verbose_name = "Plugins"
