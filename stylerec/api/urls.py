"""URLs of the stylerec API, mounted by the shop under /api/v1/."""

from django.urls import path

from . import views

app_name = "stylerec-api"

urlpatterns = [
    path("events/", views.EventsView.as_view(), name="events"),
]
