"""App config for stylerec, the personalization loop."""

from django.apps import AppConfig


class StyleRecConfig(AppConfig):
    name = "stylerec"
    verbose_name = "Style recommendations"
    default_auto_field = "django.db.models.BigAutoField"
