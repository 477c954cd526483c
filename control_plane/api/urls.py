from django.urls import path, re_path

from control_plane.api import views

app_name = "api"

urlpatterns = [
    path("enroll", views.enroll, name="enroll"),
    path("heartbeat", views.heartbeat, name="heartbeat"),
    re_path(r"^artifacts/(?P<sha256>[0-9a-f]{64})$", views.artifact, name="artifact"),
    re_path(r"^compiled/(?P<sha256>[0-9a-f]{64})$", views.compiled, name="compiled"),
]
