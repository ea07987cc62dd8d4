"""The demo shop app."""

from django.apps import AppConfig


class StorefrontConfig(AppConfig):
    name = "storefront"
    verbose_name = "Demo shop"
    default_auto_field = "django.db.models.BigAutoField"
