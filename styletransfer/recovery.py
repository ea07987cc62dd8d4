"""Recovery without beat: every render worker re-enqueues the renders of dead workers."""

import logging
import threading

from django.db import connection

from . import services
from .conf import conf

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_loop: "RecoveryLoop | None" = None


class RecoveryLoop:
    """A daemon thread that calls services.renditions_requeue at once, then every
    RECOVERY_INTERVAL seconds, so a dead claim is rendered again within about
    HEARTBEAT_TIMEOUT + RECOVERY_INTERVAL seconds of its worker's death."""

    def __init__(self) -> None:
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="styletransfer-recovery", daemon=True)

    def start(self) -> "RecoveryLoop":
        self.thread.start()
        return self

    def stop(self, timeout: float = 5) -> None:
        self.stopped.set()
        self.thread.join(timeout)

    def _run(self) -> None:
        while not self.stopped.is_set():
            try:
                requeued = services.renditions_requeue()
                if requeued:
                    logger.info("Recovery enqueued %s rendition(s) again", requeued)
            except Exception as exc:  # database or broker down: the next round tries again
                logger.warning("Recovery round failed: %s", exc)
            finally:
                connection.close()  # this thread's own connection; a restarted database is fine
            self.stopped.wait(conf.RECOVERY_INTERVAL)


def recovery_start() -> RecoveryLoop:
    """The process's recovery loop, started once however often this is called."""
    global _loop
    with _lock:
        if _loop is None or not _loop.thread.is_alive():
            _loop = RecoveryLoop().start()
        return _loop


def recovery_stop() -> None:
    global _loop
    with _lock:
        if _loop is not None:
            _loop.stop()
            _loop = None


def consumes_render_queue(consumer) -> bool:
    # The queues of `-Q`, or all the app knows when the worker was started without it.
    return conf.RENDER_QUEUE in consumer.app.amqp.queues.consume_from


def on_worker_ready(sender, **kwargs) -> None:
    """Celery's worker_ready (sent once, in the worker's main process): render workers only."""
    if consumes_render_queue(sender):
        recovery_start()
