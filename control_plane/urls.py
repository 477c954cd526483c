"""The control plane's URLs: the admin, the fleet pages, and the device-facing API."""

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from control_plane.builds.api import urls as builds_api
from control_plane.devices.api import urls as devices_api
from control_plane.health import healthz
from control_plane.notices.api import urls as notices_api
from control_plane.plugins.api import urls as plugins_api

device_api = [
    *devices_api.urlpatterns,
    *plugins_api.urlpatterns,
    *builds_api.urlpatterns,
    *notices_api.urlpatterns,
]
"""Each app serves its part of the device API from its own ``api/`` package."""

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="devices:fleet", permanent=False)),
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("fleet/rollouts/", include("control_plane.rollouts.urls")),
    path("fleet/", include("control_plane.devices.urls")),
    path("api/v1/", include((device_api, "api"))),
    path("healthz", healthz, name="healthz"),
]
