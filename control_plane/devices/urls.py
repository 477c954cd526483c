from django.urls import path

from control_plane.devices import views

app_name = "devices"

urlpatterns = [
    path("", views.fleet, name="fleet"),
    path("devices.json", views.fleet_json, name="fleet-json"),
    path("devices/<uuid:pk>/", views.device_detail, name="device"),
    path("versions/<str:plugin>/<str:version>/", views.version_page, name="version"),
]
