"""stylerec's system checks: what `manage.py check` says about the STYLEREC settings."""

from django.core.checks import run_checks


def stylerec_messages() -> list:
    return [message for message in run_checks() if message.id.startswith("stylerec.")]


def test_the_demo_shops_settings_pass():
    assert stylerec_messages() == []


def test_an_unknown_key_is_named(settings):
    settings.STYLEREC = {**settings.STYLEREC, "REWARD_WINDOWS": 3600}
    (message,) = stylerec_messages()
    assert message.id == "stylerec.W000" and "REWARD_WINDOWS" in message.msg


def test_a_missing_product_model_is_an_error(settings):
    settings.STYLEREC = {
        key: value for key, value in settings.STYLEREC.items() if key != "PRODUCT_MODEL"
    }
    (message,) = stylerec_messages()
    assert message.id == "stylerec.E001" and message.is_serious()


def test_a_product_model_that_is_no_model_is_an_error(settings):
    for name in ("storefront.NoSuchProduct", "no-dot"):
        settings.STYLEREC = {**settings.STYLEREC, "PRODUCT_MODEL": name}
        (message,) = stylerec_messages()
        assert message.id == "stylerec.E002" and message.is_serious(), name


def test_a_product_model_other_than_styletransfers_is_an_error(settings):
    settings.STYLEREC = {**settings.STYLEREC, "PRODUCT_MODEL": "testshop.Item"}
    (message,) = stylerec_messages()
    assert message.id == "stylerec.E003" and message.is_serious()
    assert "testshop.Item" in message.msg and "storefront.Product" in message.msg


def test_settings_that_are_no_dict_get_one_error(settings):
    settings.STYLEREC = ["PRODUCT_MODEL", "storefront.Product"]
    (message,) = stylerec_messages()
    assert message.id == "stylerec.E000" and message.is_serious()


def test_templates_without_the_request_are_an_error(settings):
    engine = {**settings.TEMPLATES[0]}
    engine["OPTIONS"] = {
        **engine["OPTIONS"],
        "context_processors": [
            name
            for name in engine["OPTIONS"]["context_processors"]
            if name != "django.template.context_processors.request"
        ],
    }
    settings.TEMPLATES = [engine]
    (message,) = stylerec_messages()
    assert message.id == "stylerec.E007" and "\n" not in message.msg


def test_assignment_control_and_value_settings_are_checked(settings):
    cases = {
        "CONTROL_SHARE": ([1.0, -0.1, "10%", True], "stylerec.E004"),
        "REDRAW_INTERVAL": ([-1, "1h"], "stylerec.E005"),
        "ASSIGNMENT_SALT": (["", 42], "stylerec.E006"),
        "REWARD_VALUE_UNIT": ([0, "100"], "stylerec.E009"),
        "CURRENCY": (["euro", "eu"], "stylerec.E010"),
    }
    base = settings.STYLEREC
    for key, (values, check) in cases.items():
        for value in values:
            settings.STYLEREC = {**base, key: value}
            (message,) = stylerec_messages()
            assert message.id == check and message.is_serious(), (key, value)
    settings.STYLEREC = {**base, "CONTROL_SHARE": 0.25, "REDRAW_INTERVAL": 0, "CURRENCY": "EUR"}
    assert stylerec_messages() == []


def test_a_redraw_interval_longer_than_the_reward_window_is_a_warning(settings):
    settings.STYLEREC = {**settings.STYLEREC, "REDRAW_INTERVAL": 7 * 86400}
    (message,) = stylerec_messages()
    assert message.id == "stylerec.W001" and not message.is_serious()
