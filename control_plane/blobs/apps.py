from django.apps import AppConfig


class BlobsConfig(AppConfig):
    name = "control_plane.blobs"
    label = "blobs"
    verbose_name = "Blobs"
