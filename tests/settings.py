"""Test settings: the demo shop's, plus a second shop app shaped differently."""

from storefront.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testshop"]  # noqa: F405

# No control group unless a test asks for one (tests/stylerec/test_control.py): which shoppers
# fall in it depends on their ids, and the loop's tests need every shopper personalized.
STYLEREC = {**STYLEREC, "CONTROL_SHARE": 0.0}  # noqa: F405

# Onboarding tunes a decoder for minutes on a CPU: only the tests about it turn it on
# (tests/styletransfer/test_onboarding.py), whatever STYLETRANSFER_ONBOARD_STYLES says.
# The suite's styles render at their own small sizes; the widths' tests set WIDTHS themselves
# (tests/styletransfer/test_widths.py).
STYLETRANSFER = {**STYLETRANSFER, "ONBOARD_STYLES": False, "WIDTHS": []}  # noqa: F405
