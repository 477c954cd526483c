from django.urls import re_path

from control_plane.builds.api import views

urlpatterns = [
    re_path(r"^compiled/(?P<sha256>[0-9a-f]{64})$", views.compiled, name="compiled"),
]
