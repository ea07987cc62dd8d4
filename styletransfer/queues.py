"""How many messages wait in the Celery queues renders go through, read from the broker."""

import logging

from .conf import conf

logger = logging.getLogger(__name__)

# A dashboard must answer quickly even when the broker is unreachable.
CONNECT_TIMEOUT = 2.0


def queue_depths() -> dict[str, int | None]:
    """Messages waiting per queue (render, default); None when the broker cannot tell."""
    names = list(dict.fromkeys([conf.RENDER_QUEUE, conf.DEFAULT_QUEUE]))
    try:
        from celery import current_app

        connection = current_app.connection_for_read(connect_timeout=CONNECT_TIMEOUT)
    except Exception as exc:  # no Celery app configured: nothing to ask
        logger.info("No broker to ask for queue depths: %s", exc)
        return dict.fromkeys(names)
    try:
        with connection:
            connection.ensure_connection(max_retries=0, timeout=CONNECT_TIMEOUT)
            channel = connection.default_channel
            return {name: _depth(channel, name) for name in names}
    except Exception as exc:  # broker down or refusing: the caller shows "unknown"
        logger.info("Could not read queue depths: %s", exc)
        return dict.fromkeys(names)


def _depth(channel, name: str) -> int | None:
    client = getattr(channel, "client", None)
    if client is not None and hasattr(client, "llen"):
        # Redis: a queue is a list per priority step (LLEN render, LLEN render\x06\x163, ...).
        steps = getattr(channel, "priority_steps", [0])
        return sum(int(client.llen(channel._q_for_pri(name, step))) for step in steps)
    try:
        # AMQP and kombu's virtual transports report the count on a passive declare.
        return int(channel.queue_declare(queue=name, passive=True).message_count)
    except Exception as exc:  # the queue was never declared, or the transport cannot say
        logger.info("Broker cannot report the depth of %s: %s", name, exc)
        return None
