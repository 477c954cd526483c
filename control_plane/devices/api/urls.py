from django.urls import path

from control_plane.devices.api import views

urlpatterns = [
    path("enroll", views.enroll, name="enroll"),
    path("heartbeat", views.heartbeat, name="heartbeat"),
]
