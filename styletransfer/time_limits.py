"""RENDER_TIME_LIMIT where Celery's pool does not enforce it.

Celery's prefork pool stops a task past its soft time limit; the solo pool (one render per
process, the README's render worker) and in-process renders (render_catalog in the embedded
default) ignore time limits, so a render that never ends would hold its worker forever while
its heartbeat keeps the claim alive. rendering.rendition_render runs the engine under this: on
the main thread an interval timer raises Celery's own SoftTimeLimitExceeded into the render,
which then ends `failed` with the reason.
"""

import contextlib
import signal
import threading

from celery.exceptions import SoftTimeLimitExceeded


@contextlib.contextmanager
def soft_time_limit(seconds: float):
    """Raise SoftTimeLimitExceeded in the block after `seconds` (main thread only; elsewhere,
    or with a timer already running, e.g. an outer limit, it does nothing)."""
    if (
        not seconds
        or threading.current_thread() is not threading.main_thread()
        or signal.getitimer(signal.ITIMER_REAL)[0]
    ):
        yield
        return

    def expire(signum, frame):
        raise SoftTimeLimitExceeded(f"soft time limit ({seconds} s) exceeded")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
