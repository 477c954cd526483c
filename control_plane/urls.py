"""The control plane's URLs: the admin, the fleet pages, and the device-facing API."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from control_plane.health import healthz

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="devices:fleet", permanent=False)),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("fleet/", include("control_plane.devices.urls")),
    path("api/v1/", include("control_plane.api.urls")),
    path("healthz", healthz, name="healthz"),
]
