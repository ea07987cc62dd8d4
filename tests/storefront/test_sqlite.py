"""The embedded default's SQLite file holds when the web process and the worker write at once."""

import textwrap

import pytest

from tests.helpers import run_with_shop_settings

# A worker's write transaction holds the file for a moment; meanwhile the web process starts
# a transaction that reads (a style, say) and then writes. With SQLite's default deferred
# transactions, the reader's snapshot is stale once the worker commits, and its write fails
# at once with "database is locked" whatever the busy timeout.
SCRIPT = textwrap.dedent(
    """
    import sqlite3, sys, threading, time
    import django
    django.setup()
    from django.db import connection, transaction

    path = connection.settings_dict["NAME"]
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS probe (n INTEGER)")
    connection.close()
    holding, release = threading.Event(), threading.Event()

    def worker():
        other = sqlite3.connect(path, timeout=20, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO probe VALUES (1)")
        holding.set()
        release.wait(5)
        other.execute("COMMIT")
        other.close()

    thread = threading.Thread(target=worker)
    thread.start()
    holding.wait(5)
    threading.Timer(0.5, release.set).start()
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM probe")
            cursor.execute("INSERT INTO probe VALUES (2)")
    thread.join()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM probe")
        print(cursor.fetchone()[0])
    """
)


@pytest.mark.slow
def test_a_write_while_the_worker_writes_waits_instead_of_failing(tmp_path):
    result = run_with_shop_settings(["-c", SCRIPT], {"STOREFRONT_VAR_DIR": str(tmp_path)})
    assert "database is locked" not in result.stderr
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "2", "both writes are in the file"
