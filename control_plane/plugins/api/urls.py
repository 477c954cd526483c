from django.urls import re_path

from control_plane.plugins.api import views

urlpatterns = [
    re_path(r"^artifacts/(?P<sha256>[0-9a-f]{64})$", views.artifact, name="artifact"),
]
