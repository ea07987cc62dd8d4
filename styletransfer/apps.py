"""App config for styletransfer: imports no engine, so web processes never load torch."""

from django.apps import AppConfig


class StyleTransferConfig(AppConfig):
    name = "styletransfer"
    verbose_name = "Style transfer"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks, receivers

        checks.register()
        receivers.connect()
