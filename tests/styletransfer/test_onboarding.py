"""Style onboarding in the shop: requested on save, tuned by the real engine, keyed, shown."""

import pytest
from django.core.files.storage import default_storage

from styletransfer import adapters, rendering, services, tasks
from styletransfer.engines import WeightsError
from styletransfer.engines.engine import get_engine
from styletransfer.models import Rendition, Style

from .helpers import make_style
from .test_renditions import make_product

pytestmark = pytest.mark.django_db

QUICK = {
    "ONBOARD_STYLES": True,
    "ONBOARDING_STEPS": 3,
    "QUALITY_SAMPLES": 1,
    "QUALITY_SIZE": 64,
}


@pytest.fixture
def onboarding_on(settings, tmp_path, monkeypatch):
    settings.STYLETRANSFER = {**settings.STYLETRANSFER, **QUICK}
    monkeypatch.setenv("STYLETRANSFER_ADAPTER_DIR", str(tmp_path / "worker-adapters"))
    return tmp_path / "worker-adapters"


def test_saving_a_style_requests_its_onboarding_once_per_reference(
    onboarding_on, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as sent:
        style = make_style(engine="feedforward")
    assert (style.onboarding_state, style.onboarding_reference) == ("pending", style.reference_hash)
    assert len(sent) == 2  # the embedding and the onboarding, both for the render queue
    with django_capture_on_commit_callbacks() as sent:
        services.style_save(style=style)  # same reference: nothing new to tune
    assert len(sent) == 1  # the embedding, still not computed, is asked for again
    assert style.render_params().adapter == ""  # nothing enters the key before it is ready


@pytest.mark.slow
def test_an_onboarded_adapter_supersedes_the_renditions_made_before_it(
    onboarding_on, django_capture_on_commit_callbacks
):
    product = make_product()
    style = make_style(engine="feedforward", size=64, steps=5)
    source = services.source_images_of([product])[product.pk]
    before = services.rendition_request(source=source, style=style)
    with django_capture_on_commit_callbacks(execute=False):
        assert tasks.onboard_style(style.pk) == "ready"
    style.refresh_from_db()
    assert style.onboarding_state == "ready" and len(style.adapter_sha256) == 64
    assert style.render_params().adapter == style.adapter_sha256
    assert style.version == 2 and style.params_hash != before.params_hash
    assert not Rendition.objects.filter(pk=before.pk).exists()  # superseded, file and row
    quality = style.quality
    assert quality["samples"] == 1 and quality["size"] == 64 and quality["steps"] == 3
    assert quality["optimize"]["style_loss"] > 0 and quality["feedforward"]["content_change"] > 0
    assert default_storage.exists(adapters.storage_name(style.adapter_sha256))
    after = services.rendition_request(source=source, style=style)
    assert after.params_hash == style.params_hash != before.params_hash
    get_engine("feedforward", "cpu").adapters.forget(style.adapter_sha256)  # another worker
    rendered = rendering.rendition_render(rendition_id=after.pk)
    assert rendered.status == "ready", rendered.error  # the adapter fetched from storage
    assert tasks.onboard_style(style.pk) == "skipped"  # a redelivered message tunes nothing


@pytest.mark.slow
def test_a_tampered_adapter_is_fetched_again_or_refused_and_onboarded_again(
    onboarding_on, django_capture_on_commit_callbacks
):
    style = make_style(engine="feedforward", size=64, steps=5)
    with django_capture_on_commit_callbacks(execute=False):
        tasks.onboard_style(style.pk)
    style.refresh_from_db()
    sha256 = style.adapter_sha256
    engine = get_engine("feedforward", "cpu")
    local = engine.adapters.path_of(sha256)
    local.write_bytes(local.read_bytes()[:-10])  # a torn local copy: fetched again from storage
    adapters.adapter_ensure_local(engine, sha256)
    assert engine.adapters.load(sha256).meta["sha256"] == sha256
    local.unlink()
    stored = default_storage.path(adapters.storage_name(sha256))
    with open(stored, "r+b") as stream:  # and a tampered shared copy: refused
        stream.seek(100)
        stream.write(b"\0" * 8)
    with pytest.raises(WeightsError, match="altered and was refused"):
        adapters.adapter_ensure_local(engine, sha256)
    style.refresh_from_db()
    assert style.needs_onboarding()
    with django_capture_on_commit_callbacks() as sent:
        services.styles_catch_up()
    style.refresh_from_db()
    assert style.onboarding_state == "pending" and len(sent) == 1


def onboarded(style: Style, ratio: float) -> Style:
    quality = {
        "optimize": {"style_loss": 1000.0, "content_change": 0.41},
        "feedforward_base": {"style_loss": 5600.0, "content_change": 0.79},
        "feedforward": {"style_loss": 1000.0 * ratio, "content_change": 0.52},
        "ratio": ratio,
        "worst_ratio": ratio + 0.4,
        "base_ratio": 5.6,
        "samples": 3,
        "size": 256,
    }
    Style.objects.filter(pk=style.pk).update(
        onboarding_state="ready",
        onboarding_reference=style.reference_hash,
        adapter_sha256="ab" * 32,
        quality=quality,
    )
    return Style.objects.get(pk=style.pk)


def test_the_preview_shows_both_engines_figures_and_offers_the_other_engine(
    client, django_user_model
):
    style = onboarded(make_style(engine="feedforward"), ratio=2.31)
    make_product()
    django_user_model.objects.create_superuser("boss", "b@example.com", "pw-123456789")
    client.login(username="boss", password="pw-123456789")
    url = f"/admin/styletransfer/style/{style.pk}/preview/"
    page = client.get(url).content.decode()
    assert "Quality on 3 sample products at 256 px" in page
    assert "feedforward (onboarded)" in page and "optimize" in page
    assert "2310" in page and "0.52" in page and "0.41" in page  # style loss, content change
    assert "2.31×" in page and "5.60× before onboarding" in page
    assert "falls short of the optimize engine" in page
    assert "Switch Test Style to the optimize engine" in page
    assert client.get(f"/admin/styletransfer/style/{style.pk}/engine/").status_code == 405
    response = client.post(f"/admin/styletransfer/style/{style.pk}/engine/", {"engine": "optimize"})
    assert response.status_code == 302 and response.url == url
    style.refresh_from_db()
    assert style.engine == "optimize" and style.version == 2

    good = onboarded(make_style("good-style", engine="feedforward", seed=1), ratio=1.12)
    page = client.get(f"/admin/styletransfer/style/{good.pk}/preview/").content.decode()
    assert "1.12×" in page and "falls short" not in page and "Switch" not in page
    change = client.get(f"/admin/styletransfer/style/{good.pk}/change/").content.decode()
    assert "ready: feedforward style loss 1.12x" in change


def test_the_engine_switch_is_for_staff_who_may_change_styles(client, django_user_model):
    style = onboarded(make_style(engine="feedforward"), ratio=2.0)
    staff = django_user_model.objects.create_user("viewer", password="pw-123456789", is_staff=True)
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="view_style"))
    client.login(username="viewer", password="pw-123456789")
    page = client.get(f"/admin/styletransfer/style/{style.pk}/preview/").content.decode()
    assert "falls short" in page and "Switch" not in page
    response = client.post(f"/admin/styletransfer/style/{style.pk}/engine/", {"engine": "optimize"})
    assert response.status_code == 403
    assert Style.objects.get(pk=style.pk).engine == "feedforward"


def test_only_feedforward_styles_are_onboarded(onboarding_on, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as sent:
        colour = make_style("colour-look", engine="color")
    assert not colour.needs_onboarding()
    assert colour.onboarding_reference == "", "no decoder tuning for an engine without one"
    assert len(sent) == 1  # the embedding only
    with django_capture_on_commit_callbacks() as sent:
        services.styles_catch_up()
    colour.refresh_from_db()
    assert colour.onboarding_reference == "", "nor from the sweep"
