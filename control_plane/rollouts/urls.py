from django.urls import path

from control_plane.rollouts import views

app_name = "rollouts"

urlpatterns = [
    path("", views.rollout_list, name="list"),
    path("<int:pk>/", views.rollout_detail, name="detail"),
    path("<int:pk>.json", views.rollout_json, name="json"),
    path("<int:pk>/pause/", views.pause, name="pause"),
    path("<int:pk>/resume/", views.resume, name="resume"),
    path("<int:pk>/abort/", views.abort, name="abort"),
    path("<int:pk>/rollback/", views.rollback, name="rollback"),
]
