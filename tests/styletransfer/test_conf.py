"""The apps' settings: defaults, imported dotted paths, and checks that name mistakes."""

import pytest
from django.core import checks

from styletransfer.conf import AppSettings, conf


def messages(prefix: str) -> dict[str, str]:
    return {m.id: m.msg for m in checks.run_checks() if m.id and m.id.startswith(prefix)}


def test_a_setting_the_shop_leaves_out_has_its_default(settings):
    settings.STYLETRANSFER = {"PRODUCT_MODEL": "storefront.Product"}
    assert conf.RENDER_QUEUE == "render"
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "RENDER_QUEUE": "gpu"}
    assert conf.RENDER_QUEUE == "gpu", "override_settings is seen at once"


def test_reading_an_unknown_setting_is_an_error():
    with pytest.raises(AttributeError, match="Unknown STYLETRANSFER setting: RENDER_QUEU"):
        conf.RENDER_QUEU  # noqa: B018


def test_dotted_paths_come_back_imported(settings):
    app = AppSettings("EXAMPLE_APP", {"HOOK": None}, import_strings=["HOOK"])
    settings.EXAMPLE_APP = {"HOOK": "os.path.join"}
    import os.path

    assert app.HOOK is os.path.join


def test_an_unknown_key_is_named_by_the_system_checks(settings):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "RENDER_QUEU": "gpu"}
    found = messages("styletransfer.W000")
    assert "RENDER_QUEU" in found["styletransfer.W000"]


def test_settings_that_are_not_a_dict_are_an_error(settings):
    settings.STYLETRANSFER = ["PRODUCT_MODEL"]
    assert "must be a dict" in messages("styletransfer.E000")["styletransfer.E000"]


def test_a_product_images_path_that_cannot_be_imported_is_an_error(settings):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, "PRODUCT_IMAGES": "shop.nowhere.images"}
    assert "cannot be imported" in messages("styletransfer.E004")["styletransfer.E004"]


def test_the_demo_settings_pass_every_check():
    assert messages("styletransfer") == {}


@pytest.mark.parametrize(
    ("name", "value", "refused"),
    [
        ("RENDER_BATCH_SIZE", 128, False),
        ("RENDER_BATCH_SIZE", 0, True),
        ("RENDER_BATCH_SIZE", "16", True),
        ("RENDER_BATCH_SIZE", None, True),
        ("RENDER_IO_THREADS", None, False),
        ("RENDER_IO_THREADS", 8, False),
        ("RENDER_IO_THREADS", -1, True),
        ("RENDER_IO_THREADS", True, True),
    ],
)
def test_batch_settings_are_whole_numbers(settings, name, value, refused):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, name: value}
    found = messages("styletransfer.E009")
    assert bool(found) == refused
    if refused:
        assert name in found["styletransfer.E009"]
