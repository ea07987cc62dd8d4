"""Fixtures of the loop's tests: a fresh cache per test, and a small shop (see helpers)."""

import pytest

from . import helpers
from .helpers import make_shop

fresh_cache, shop = helpers.fresh_cache, helpers.shop  # shared with tests/styletransfer


@pytest.fixture
def shop_committed(transactional_db):
    """The same shop, committed: for code paths that differ outside a transaction."""
    return make_shop()
