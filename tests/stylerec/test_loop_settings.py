"""The live loop settings staff save in the admin: validated, and seen by the next page."""

import pytest

from stylerec.loop_settings import loop_settings
from stylerec.models import LoopSettings

ADD = "/admin/stylerec/loopsettings/add/"


@pytest.fixture
def boss(client, django_user_model):
    django_user_model.objects.create_superuser("boss", "boss@example.com", "pw-123456789")
    client.login(username="boss", password="pw-123456789")
    return client


def form(**values) -> dict:
    return {
        "personalization_enabled": "on",
        "policy": "thompson",
        "uniform_share": "0.05",
        "exploration_strength": "0.25",
        **values,
    }


@pytest.mark.parametrize(
    "values",
    [
        {"policy": "bogus"},
        {"uniform_share": "1.5"},
        {"policy": "softmax", "exploration_strength": "0"},
        {"exploration_strength": "-1"},
    ],
)
def test_an_invalid_value_is_a_form_error_not_a_saved_row(boss, values):
    response = boss.post(ADD, form(**values))
    assert response.status_code == 200, "the form is shown again"
    assert response.context["adminform"].form.errors
    assert not LoopSettings.objects.exists()


def test_an_invalid_change_leaves_the_live_settings_as_they_were(boss):
    saved = LoopSettings.objects.create(policy="thompson", uniform_share=0.1)
    response = boss.post(f"/admin/stylerec/loopsettings/{saved.pk}/change/", form(policy="nope"))
    assert response.status_code == 200 and response.context["adminform"].form.errors
    saved.refresh_from_db()
    assert saved.policy == "thompson" and loop_settings().uniform_share == 0.1


def test_a_valid_save_is_seen_by_the_next_page(boss):
    assert loop_settings().policy == "thompson"  # the defaults, now cached
    response = boss.post(ADD, form(policy="softmax", exploration_strength="0.01"))
    assert response.status_code == 302
    (saved,) = LoopSettings.objects.all()
    assert saved.policy == "softmax" and saved.exploration_strength == 0.01
    assert loop_settings().policy == "softmax", "the cached settings were dropped"
    response = boss.post(
        f"/admin/stylerec/loopsettings/{saved.pk}/change/", form(uniform_share="0.2")
    )
    assert response.status_code == 302
    assert LoopSettings.objects.get().uniform_share == 0.2 == loop_settings().uniform_share
