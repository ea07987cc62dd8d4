"""A task round-trips through the real broker and a real worker process."""

import pytest

from storefront.celery import ping


@pytest.mark.worker
def test_task_round_trips_through_redis_and_a_worker(celery_worker):
    result = ping.delay("hello")
    assert result.get(timeout=30) == "pong:hello"
