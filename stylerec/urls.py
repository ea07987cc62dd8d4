"""Shopper-facing URLs of stylerec (the shop mounts them, e.g. under /stylerec/)."""

from django.urls import path

from . import views

app_name = "stylerec"

urlpatterns = [
    path("originals/", views.originals, name="originals"),
]
