from django.urls import path

from control_plane.notices.api import views
from fleet_common.wire.paths import CHANNEL

API_PREFIX = "/api/v1/"

urlpatterns = [
    path(CHANNEL.removeprefix(API_PREFIX), views.channel, name="channel"),
]
