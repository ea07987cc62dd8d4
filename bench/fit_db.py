"""The full refit from PostgreSQL, loading included: what `manage.py stylerec_fit` costs.

.venv/bin/python bench/fit.py --from-db [--shoppers 100000] [--sizes 1000000,5000000]
                                        [--baseline] [--keep]

Seeds its own database (BENCH_DATABASE_URL, default stylerec_fit_bench, dropped first and
at the end unless --keep) through COPY: styles with synthetic embeddings, N shoppers, and
decisions with category and device context, impressions (from half of the shoppers, as a
beacon would) and clicks drawn from category-dependent hidden tastes. The decisions of the
first size are kept and more are added for the next, so the sizes share their shoppers.
For each size a fresh subprocess runs the `stylerec_fit` command and reports its wall time,
peak RSS (getrusage) and CPU seconds, its own and PostgreSQL's (every backend it used), per
phase (PHASES) and in all, beside the load average; --baseline also runs, in its own
subprocess, the loading that `stylerec_fit` did before it streamed (every decision as a
Python row, then the context-blind fit). Target (issue 18): <= 30 s and <= 1 GiB at 5M
decisions, and peak memory flat in the number of decisions.
"""

from __future__ import annotations

import io
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DATABASE_URL = os.environ.get(
    "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/stylerec_fit_bench"
)
# The shop's cache: files under the bench's own var dir unless BENCH_CACHE_URL names one (a
# Redis shared with tests would hand them this database's model and styles).
CACHE_URL = os.environ.get("BENCH_CACHE_URL")
GIB = 1024**3
CATEGORIES = ["Hoodies", "T-shirts", "Shoes", "Caps", "Bags", "Drinks", "Mugs", "Posters"]
DEVICES, DEVICE_SHARE = ["desktop", "mobile", "tablet"], [0.55, 0.4, 0.05]
_CHUNK = 200_000


def _environment() -> dict:
    cache = {"CACHE_URL": CACHE_URL} if CACHE_URL else {}
    environment = {key: value for key, value in os.environ.items() if key != "CACHE_URL"}
    return {
        **environment,
        **cache,
        "DATABASE_URL": DATABASE_URL,
        "DJANGO_SETTINGS_MODULE": "storefront.settings",
        "STOREFRONT_VAR_DIR": str(ROOT / "var" / "bench-fit"),
        "LOG_LEVEL": "WARNING",
    }


def _setup_django() -> None:
    os.environ.update(_environment())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _server(query: str) -> None:
    import psycopg

    with psycopg.connect(DATABASE_URL.rsplit("/", 1)[0] + "/postgres", autocommit=True) as db:
        db.execute(query)


def _database_name() -> str:
    return DATABASE_URL.rsplit("/", 1)[1]


def _copy(cursor, table: str, columns: list[str], lines) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for line in lines:
            copy.write(line)


def seed_shop(n_shoppers: int, n_styles: int, seed: int):
    """Fresh database, migrated, with styles and shoppers; returns the hidden tastes."""
    from stylerec.ml.simulate import make_category_shoppers, synthetic_style_embeddings

    _server(f'DROP DATABASE IF EXISTS "{_database_name()}" WITH (FORCE)')
    _server(f'CREATE DATABASE "{_database_name()}"')
    _setup_django()
    from django.core.management import call_command
    from django.db import connection

    from stylerec.models import Shopper
    from styletransfer.models import Style

    call_command("migrate", verbosity=0, stdout=io.StringIO())
    embeddings = synthetic_style_embeddings(n_styles, dim=512, seed=seed)
    Style.objects.bulk_create(
        Style(
            name=f"Bench {i}",
            slug=f"bench-{i}",
            reference_image=f"styles/bench-{i}.png",
            engine="color",
            active=True,
            embedding=embedding.tolist(),
            embedding_hash=f"bench-{i}",
        )
        for i, embedding in enumerate(embeddings)
    )
    with connection.cursor() as cursor:
        lines = (f"{i}\tbench-{i}\tf\t2026-01-01 00:00:00+00\n" for i in range(1, n_shoppers + 1))
        _copy(
            cursor.cursor,
            Shopper._meta.db_table,
            ["id", "token", "originals_only", "created_at"],
            lines,
        )
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{Shopper._meta.db_table}', 'id'), %s)",
            [n_shoppers],
        )
    rng = np.random.default_rng(seed)
    return make_category_shoppers(embeddings, n_shoppers, len(CATEGORIES), rng)


def add_decisions(tastes, first_id: int, n_decisions: int, n_styles: int, seed: int) -> None:
    """Decisions first_id.. with their impressions and clicks, through COPY, in chunks."""
    from django.db import connection
    from django.utils import timezone

    from stylerec.models import Decision, Event

    rng = np.random.default_rng(seed + first_id)
    n_shoppers = tastes.n_shoppers
    activity = rng.lognormal(0.0, 1.2, n_shoppers)
    device_of = rng.choice(len(DEVICES), n_shoppers, p=DEVICE_SHARE)
    arms = ["original"] + [f"bench-{i}" for i in range(n_styles)]
    candidates = json.dumps(arms)
    probabilities = json.dumps([round(1 / len(arms), 6)] * len(arms))
    now = timezone.now()
    decision_columns = [
        "id", "shopper_id", "product_id", "candidates", "probabilities", "chosen",
        "propensity", "model_version", "policy", "context", "created_at", "assignment",
    ]  # fmt: skip
    event_columns = [
        "shopper_id", "kind", "decision_id", "product_id", "style_slug", "occurred_at",
        "received_at", "source", "currency",
    ]  # fmt: skip
    with connection.cursor() as cursor:
        for start in range(0, n_decisions, _CHUNK):
            size = min(_CHUNK, n_decisions - start)
            ids = np.arange(first_id + start, first_id + start + size)
            shopper = rng.choice(n_shoppers, size, p=activity / activity.sum())
            category = rng.integers(0, len(CATEGORIES), size)
            arm = rng.integers(0, len(arms), size)
            click = rng.random(size) < tastes.click_probability[shopper, category, arm]
            seconds = rng.integers(60, 30 * 86400, size)
            decision_lines, event_lines = [], []
            for i in range(size):
                created = (now - _seconds(seconds[i])).isoformat()
                shopper_id, decision_id = int(shopper[i]) + 1, int(ids[i])
                context = (
                    f'{{"category": "{CATEGORIES[category[i]]}", '
                    f'"device": "{DEVICES[device_of[shopper[i]]]}"}}'
                )
                decision_lines.append(
                    f"{decision_id}\t{shopper_id}\t{decision_id % 500}\t{candidates}\t"
                    f"{probabilities}\t{arms[arm[i]]}\t{1 / len(arms)}\tbench\tuniform\t"
                    f"{context}\t{created}\tbench\n"
                )
                kinds = (["impression"] if shopper_id % 2 == 0 else []) + (
                    ["click"] if click[i] else []
                )
                for kind in kinds:
                    event_lines.append(
                        f"{shopper_id}\t{kind}\t{decision_id}\t{decision_id % 500}\t"
                        f"{arms[arm[i]]}\t{created}\t{created}\tbench\t\n"
                    )
            _copy(cursor.cursor, Decision._meta.db_table, decision_columns, decision_lines)
            _copy(cursor.cursor, Event._meta.db_table, event_columns, event_lines)
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('{Decision._meta.db_table}', 'id'), %s)",
            [first_id + n_decisions],
        )
        cursor.execute(f"ANALYZE {Decision._meta.db_table}; ANALYZE {Event._meta.db_table}")


def _seconds(value):
    from datetime import timedelta

    return timedelta(seconds=int(value))


# The refit's phases as the bench times them: (module, function) wrapped in `_phased`.
PHASES = {
    "contexts": ("stylerec.fitting", "context_levels"),
    "log": ("stylerec.fitting", "stream_statistics"),
    "fit": ("stylerec.ml.context", "fit_context_preferences"),
    "profiles": ("stylerec.fitting", "profiles_save"),
}


def measure(baseline: bool) -> dict:
    """In this (fresh) process: the real `stylerec_fit`, or the old whole-log loading."""
    _setup_django()
    backend = _backend_pid()
    readers = _reader_backends()
    phases = {} if baseline else _phased(backend, readers)
    server_before = _process_cpu(backend)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    before, cpu_before = usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    if baseline:
        figures = _old_loading()
    else:
        from django.core.management import call_command

        out = io.StringIO()
        call_command("stylerec_fit", stdout=out)
        figures = {"output": out.getvalue().strip()}
    seconds = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        **figures,
        "seconds": seconds,
        "cpu_seconds": usage.ru_utime + usage.ru_stime - cpu_before,
        "server_cpu_seconds": _process_cpu(backend) - server_before + readers[0],
        "peak_rss": usage.ru_maxrss * 1024,
        "rss_before": before,
        "phases": phases,
    }


def _reader_backends() -> list[float]:
    """CPU seconds of the backends of the connections the log's readers open besides Django's
    (fitting.logs.LOG_READERS), each read as its connection closes: [running total]."""
    import psycopg

    total = [0.0]
    connect = psycopg.connect

    def counted(*args, **kwargs):
        db = connect(*args, **kwargs)
        pid, close = db.info.backend_pid, db.close

        def closing():
            total[0] += _process_cpu(pid)  # the backend started with the connection
            close()

        db.close = closing
        return db

    psycopg.connect = counted
    return total


def _phased(backend: int, readers: list[float]) -> dict:
    """Wrap each of PHASES to add its wall, process CPU and PostgreSQL CPU seconds (Django's
    backend and the readers') to the returned dict as the refit runs (the rest of the refit
    is the difference to the total)."""
    import importlib

    phases: dict[str, list[float]] = {}

    def server() -> float:
        return _process_cpu(backend) + readers[0]

    def wrapped(name, function):
        def timed(*args, **kwargs):
            marks = time.perf_counter(), time.process_time(), server()
            try:
                return function(*args, **kwargs)
            finally:
                now = time.perf_counter(), time.process_time(), server()
                spent = phases.setdefault(name, [0.0, 0.0, 0.0])
                for i in range(3):
                    spent[i] += now[i] - marks[i]

        return timed

    for name, (module_name, attribute) in PHASES.items():
        module = importlib.import_module(module_name)
        setattr(module, attribute, wrapped(name, getattr(module, attribute)))
    return phases


def _backend_pid() -> int:
    """The PostgreSQL backend serving this process's queries (Django's one connection)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def _process_cpu(pid: int) -> float:
    """User + system CPU seconds of a local process (the database's side of the work: on a
    shared machine, wall time says more about the neighbours than about the fit)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _old_loading() -> dict:
    """The loading `stylerec_fit` did before streaming: load_logs' Python rows, then the
    context-blind fit on per-decision arrays (profiles not written: loading is the point)."""
    from datetime import timedelta

    from django.utils import timezone

    from stylerec.conf import conf
    from stylerec.fitting import Arms, _styles_with_embeddings, load_logs
    from stylerec.ml.em import fit_preferences
    from stylerec.ml.space import StyleSpace

    styles = _styles_with_embeddings()
    embeddings = np.asarray([e for _, e in styles], dtype=np.float64)
    space = StyleSpace.fit(embeddings)
    arms = Arms(["original"] + [slug for slug, _ in styles], space.arm_features(embeddings))
    since = timezone.now() - timedelta(days=conf.FIT_LOOKBACK_DAYS)
    logs = load_logs(arms, since=since)
    fit = fit_preferences(logs["shopper"], logs["arm"], logs["reward"], arms.features)
    shown = f"{fit.shoppers.size} shoppers, {logs['id'].size} decisions"
    return {"output": f"old loading + context-blind fit: {shown}"}


def _in_subprocess(baseline: bool) -> dict:
    command = [sys.executable, __file__, "--measure"] + (["--baseline"] if baseline else [])
    done = subprocess.run(command, env=_environment(), capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(args) -> None:
    sizes = [int(s) for s in args.sizes.split(",")]
    started = time.perf_counter()
    tastes = seed_shop(args.shoppers, args.styles, args.seed)
    print(
        f"stylerec_fit from PostgreSQL: {args.shoppers:,} shoppers, {args.styles} styles, "
        f"{len(CATEGORIES)} categories x {len(DEVICES)} devices; database {_database_name()}"
    )
    rows, seeded = [], 0
    try:
        for size in sizes:
            add_decisions(tastes, seeded + 1, size - seeded, args.styles, args.seed)
            seeded = size
            load = os.getloadavg()[0]
            real = _in_subprocess(False)
            old = _in_subprocess(True) if args.baseline else None
            rows.append((size, load, real, old))
            print(
                f"  {size:>10,} decisions (seeded at {time.perf_counter() - started:.0f} s, "
                f"load {load:.2f}): {real['seconds']:.1f} s ({real['cpu_seconds']:.1f} s CPU in "
                f"this process, {real['server_cpu_seconds']:.1f} s in PostgreSQL), peak RSS "
                f"{real['peak_rss'] / GIB:.2f} GiB (Django alone {real['rss_before'] / GIB:.2f})"
                + (
                    f"; old loading {old['seconds']:.1f} s ({old['cpu_seconds']:.1f} + "
                    f"{old['server_cpu_seconds']:.1f} s CPU), {old['peak_rss'] / GIB:.2f} GiB"
                    if old
                    else ""
                )
            )
            print(f"      {real['output']}")
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            _server(f'DROP DATABASE IF EXISTS "{_database_name()}" WITH (FORCE)')
    _summary(rows)


def _summary(rows) -> None:
    print(
        f"{'decisions':>12} {'load':>5} {'seconds':>8} {'CPU s':>6} {'PG CPU s':>8} "
        f"{'peak GiB':>9} {'old s':>7} {'old CPU':>7} {'old PG':>7} {'old GiB':>8}"
    )
    for size, load, real, old in rows:
        print(
            f"{size:>12,} {load:>5.1f} {real['seconds']:>8.1f} {real['cpu_seconds']:>6.1f} "
            f"{real['server_cpu_seconds']:>8.1f} "
            f"{real['peak_rss'] / GIB:>9.2f} "
            + (
                f"{old['seconds']:>7.1f} {old['cpu_seconds']:>7.1f} "
                f"{old['server_cpu_seconds']:>7.1f} {old['peak_rss'] / GIB:>8.2f}"
                if old
                else ""
            )
        )
    print("phases, seconds: wall / CPU in the fit's process / CPU in PostgreSQL")
    names = [*PHASES, "rest"]
    print(f"{'decisions':>12} " + " ".join(f"{name:>18}" for name in names))
    for size, _, real, _ in rows:
        spent = dict(real["phases"])
        totals = (real["seconds"], real["cpu_seconds"], real["server_cpu_seconds"])
        timed = real["phases"].values()
        spent["rest"] = [t - sum(p[i] for p in timed) for i, t in enumerate(totals)]
        cells = [spent.get(name, [0.0, 0.0, 0.0]) for name in names]
        print(f"{size:>12,} " + " ".join(f"{w:>6.1f}/{c:>5.1f}/{p:>5.1f}" for w, c, p in cells))
    if len(rows) > 1:
        (small, _, first, _), (large, _, last, _) = rows[0], rows[-1]
        print(
            f"x{large / small:.1f} decisions: x{last['seconds'] / first['seconds']:.2f} time, "
            f"x{last['peak_rss'] / first['peak_rss']:.2f} peak memory"
        )
    size, _, last, _ = rows[-1]
    ok = last["seconds"] <= 30 and last["peak_rss"] <= GIB
    print(f"target at {size:,}: <= 30 s and <= 1 GiB: {'OK' if ok else 'MISSED'}")


if __name__ == "__main__" and "--measure" in sys.argv:
    print(json.dumps(measure("--baseline" in sys.argv)))
