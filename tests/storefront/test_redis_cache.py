"""The project's Redis cache reuses one client per connection pool and still round-trips."""

import os

import pytest
from django.core.cache import caches

from storefront.redis_cache import SharedClientRedisCache

pytestmark = pytest.mark.skipif(not os.environ.get("CACHE_URL"), reason="needs CACHE_URL")


def test_the_cache_reuses_its_client_and_round_trips_through_redis() -> None:
    cache = caches["default"]
    assert isinstance(cache, SharedClientRedisCache)
    cache.set("redis-cache-test", {"n": 1}, 30)
    cache.set_many({"redis-cache-a": 1, "redis-cache-b": 2}, 30)
    assert cache.get("redis-cache-test") == {"n": 1}
    assert cache.get_many(["redis-cache-a", "redis-cache-b"]) == {
        "redis-cache-a": 1,
        "redis-cache-b": 2,
    }
    client = cache._cache.get_client("redis-cache-test")
    assert cache._cache.get_client("other") is client
    assert cache._cache.get_client("other", write=True) is client  # one server: one pool
    cache.delete_many(["redis-cache-test", "redis-cache-a", "redis-cache-b"])
    assert cache.get("redis-cache-test") is None
