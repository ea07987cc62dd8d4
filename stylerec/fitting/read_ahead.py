"""Iterating several sources at once, each in a thread of its own, a bounded queue ahead of
the consumer: the decision log's readers wait on PostgreSQL while numpy adds up (psycopg
waits for the server without the GIL)."""

from __future__ import annotations

import queue
import threading

_END = object()


def read_ahead(sources, depth: int):
    """The items of every iterable in `sources`, each iterated in a thread of its own, in no
    set order across sources, at most `depth` ahead of the consumer; an error in any raised
    here. The consumer must not use a connection a source reads meanwhile."""
    ahead: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def handed(item) -> bool:
        while not stop.is_set():
            try:
                ahead.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read(rows) -> None:
        try:
            for row in rows:
                if not handed(row):
                    return
            handed(_END)
        except BaseException as error:  # handed to the consumer, which re-raises it
            handed(error)
        finally:
            if hasattr(rows, "close"):  # a generator: its connection and transaction end here
                rows.close()

    readers = [
        threading.Thread(target=read, args=(rows,), name="stylerec-fit-log", daemon=True)
        for rows in sources
    ]
    for reader in readers:
        reader.start()
    try:
        running = len(readers)
        while running:
            item = ahead.get()
            if item is _END:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stop.set()
        for reader in readers:
            reader.join()
