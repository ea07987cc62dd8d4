from django.apps import AppConfig


class TestShopConfig(AppConfig):
    name = "tests.testshop"
    label = "testshop"
    default_auto_field = "django.db.models.BigAutoField"
