"""Fixtures of the loop's tests: a fresh cache per test, and a small shop (see helpers)."""

import pytest
from django.core.cache import cache

from .helpers import make_shop


@pytest.fixture(autouse=True)
def fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def shop(db, django_capture_on_commit_callbacks):
    """Six products, three active styles with embeddings, every rendition ready."""
    return make_shop()


@pytest.fixture
def shop_committed(transactional_db):
    """The same shop, committed: for code paths that differ outside a transaction."""
    return make_shop()
