"""Settings come from the environment with safe defaults."""

import pytest

from tests.helpers import ROOT, run_with_shop_settings


def _settings_in_fresh_process(env: dict, expr: str) -> str:
    code = (
        f"import django, os; django.setup(); from django.conf import settings as s; print({expr})"
    )
    out = run_with_shop_settings(["-c", code], env)
    out.check_returncode()
    return out.stdout.strip()


@pytest.mark.slow
def test_embedded_default_needs_no_services(tmp_path):
    env = {"STOREFRONT_VAR_DIR": str(tmp_path)}
    assert _settings_in_fresh_process(env, "s.DEBUG") == "False"
    assert _settings_in_fresh_process(env, "s.DATABASES['default']['ENGINE']").endswith("sqlite3")
    assert _settings_in_fresh_process(env, "s.CELERY_BROKER_URL") == "filesystem://"
    assert _settings_in_fresh_process(env, "s.MEDIA_ROOT") == str(tmp_path / "media")


def test_the_default_cache_is_shared_between_processes(tmp_path):
    # The web process must see what the demo's worker caches (renditions ready, new fits).
    env = {"STOREFRONT_VAR_DIR": str(tmp_path)}
    write = "__import__('django.core.cache').core.cache.cache.set('shared-probe', 'worker', 60)"
    read = "__import__('django.core.cache').core.cache.cache.get('shared-probe')"
    _settings_in_fresh_process(env, write)
    assert _settings_in_fresh_process(env, read) == "worker"


@pytest.mark.slow
def test_environment_overrides(tmp_path):
    env = {
        "STOREFRONT_VAR_DIR": str(tmp_path),
        "DATABASE_URL": "postgres://shop@db.example:5433/shop",
        "CELERY_BROKER_URL": "redis://broker.example:6379/0",
        "MEDIA_ROOT": str(tmp_path / "files"),
        "DJANGO_DEBUG": "1",
    }
    assert _settings_in_fresh_process(env, "s.DATABASES['default']['HOST']") == "db.example"
    assert _settings_in_fresh_process(env, "s.CELERY_BROKER_URL") == "redis://broker.example:6379/0"
    assert _settings_in_fresh_process(env, "s.MEDIA_ROOT") == str(tmp_path / "files")
    assert _settings_in_fresh_process(env, "s.DEBUG") == "True"


def test_secret_key_is_not_in_the_repository(tmp_path):
    env = {"STOREFRONT_VAR_DIR": str(tmp_path)}
    key = _settings_in_fresh_process(env, "s.SECRET_KEY")
    assert len(key) >= 50
    assert key not in (ROOT / "storefront" / "settings.py").read_text()
    assert key == _settings_in_fresh_process(env, "s.SECRET_KEY"), "kept across restarts"


# What the README documents for production (a shop served only over HTTPS).
PRODUCTION = {
    "DJANGO_SECRET_KEY": "x" * 20 + "-production-secret-from-the-environment-" + "y" * 20,
    "DJANGO_ALLOWED_HOSTS": "shop.example",
    "DJANGO_SECURE_COOKIES": "1",
    "DJANGO_HSTS_INCLUDE_SUBDOMAINS": "1",
    "DJANGO_HSTS_PRELOAD": "1",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
    "SERVE_MEDIA": "0",
}


@pytest.mark.slow
def test_the_documented_production_settings_pass_the_deploy_checks(tmp_path):
    result = run_with_shop_settings(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        {**PRODUCTION, "STOREFRONT_VAR_DIR": str(tmp_path)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_https_settings_follow_the_environment(tmp_path):
    env = {**PRODUCTION, "STOREFRONT_VAR_DIR": str(tmp_path), "DJANGO_BEHIND_TLS_PROXY": "1"}
    assert _settings_in_fresh_process(env, "s.SECURE_SSL_REDIRECT") == "True"
    assert (
        _settings_in_fresh_process(env, "s.SECURE_PROXY_SSL_HEADER[0]") == "HTTP_X_FORWARDED_PROTO"
    )
    plain = {"STOREFRONT_VAR_DIR": str(tmp_path)}
    assert _settings_in_fresh_process(plain, "getattr(s, 'SECURE_HSTS_SECONDS', 0)") == "0"
