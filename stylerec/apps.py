"""App config for stylerec, the personalization loop (imports no sklearn at start-up)."""

from django.apps import AppConfig


class StyleRecConfig(AppConfig):
    name = "stylerec"
    verbose_name = "Style recommendations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.apps import apps

        from . import conf, receivers

        conf.register_checks()
        receivers.connect()
        if apps.is_installed("oscar.apps.basket") and apps.is_installed("oscar.apps.order"):
            from .contrib import oscar  # add-to-basket and orders become events

            oscar.connect()
