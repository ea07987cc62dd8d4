"""Sending tasks from web processes without making pages wait on a broker that is down.

kombu retries a refused connection for about broker_connection_timeout seconds before a send
fails, even with retry=False: a page that requests six renders would wait half a minute. After
one failed send this process skips sending for DOWN_FOR seconds; what was not sent stays in
the database (a pending rendition with no enqueued_at, a style behind its catalogue), and the
recovery loops and the sweep send it once the broker answers again.
"""

import logging
import threading
import time

logger = logging.getLogger(__name__)

DOWN_FOR = 30.0

_lock = threading.Lock()
_down_until = 0.0


def send(task, *, args: list, queue: str, **options) -> bool:
    """apply_async without retries; False (and logged) when the broker is, or was just, down."""
    global _down_until
    if time.monotonic() < _down_until:
        logger.info("Broker down: %s%s left for the recovery loop", task.name, args)
        return False
    try:
        task.apply_async(args=args, queue=queue, retry=False, **options)
    except Exception as exc:  # kombu raises many types; the caller's page must not see any
        with _lock:
            _down_until = time.monotonic() + DOWN_FOR
        logger.warning("Could not send %s%s: %s", task.name, args, exc)
        return False
    return True


def reset() -> None:
    """Forget a failure (the broker is known to be back)."""
    global _down_until
    with _lock:
        _down_until = 0.0
