"""Test settings: the demo shop's, plus a second shop app shaped differently."""

from storefront.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testshop"]  # noqa: F405
