"""Test settings: the demo shop's, plus a second shop app shaped differently."""

from storefront.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testshop"]  # noqa: F405

# No control group unless a test asks for one (tests/stylerec/test_control.py): which shoppers
# fall in it depends on their ids, and the loop's tests need every shopper personalized.
STYLEREC = {**STYLEREC, "CONTROL_SHARE": 0.0}  # noqa: F405
