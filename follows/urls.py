"""Following whales and the notices about them."""

from django.urls import path

from . import views

app_name = "follows"

urlpatterns = [
    path("following/", views.following_page, name="following"),
    path("notifications/", views.notifications_page, name="notifications"),
    path("individuals/<str:catalogue_id>/follow/", views.follow, name="follow"),
    path("individuals/<str:catalogue_id>/unfollow/", views.unfollow, name="unfollow"),
    path("unsubscribe/<str:token>/", views.unsubscribe, name="unsubscribe"),
]
