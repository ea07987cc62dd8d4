"""Charts for the dashboard as inline SVG drawn on the server: no script, nothing downloaded."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Readable on the admin's light and dark themes, distinct for the colour-blind (Okabe-Ito).
PALETTE = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#d55e00", "#56b4e9", "#f0e442"]
ORIGINAL_COLOUR = "#888888"
WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 16, 14, 34


@dataclass(frozen=True)
class Series:
    name: str
    colour: str
    values: Sequence[float | None]


def colours(arms: Sequence[str], original: str = "original") -> dict[str, str]:
    """A stable colour per arm: grey for the original photo, the palette for styles."""
    styles = [arm for arm in arms if arm != original]
    result = {arm: PALETTE[n % len(PALETTE)] for n, arm in enumerate(styles)}
    result[original] = ORIGINAL_COLOUR
    return result


def percent(value: float) -> str:
    return f"{100 * value:.1f}".removesuffix(".0") + "%"


def _svg(name: str, label: str, body: list[str], height: int = HEIGHT) -> SafeString:
    return mark_safe(
        f'<svg class="stylerec-chart" data-chart="{escape(name)}" role="img" '
        f'aria-label="{escape(label)}" viewBox="0 0 {WIDTH} {height}" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(label)}</title>{''.join(body)}</svg>"
    )


def _finite(*values) -> bool:
    return all(value is not None and math.isfinite(value) for value in values)


def _nice_top(value: float) -> float:
    """A round upper bound for an axis (0.1, 0.2, 0.25, 0.5, 1 times a power of ten)."""
    if value <= 0:
        return 1.0
    scale = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * scale:
            return step * scale
    return 10 * scale


def _axes(top: float, fmt: Callable[[float], str], x_labels: Sequence[str], plot_h: int) -> list:
    plot_w = WIDTH - LEFT - RIGHT
    parts = []
    for tick in range(5):
        value = top * tick / 4
        y = TOP + plot_h - plot_h * tick / 4
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" '
            f'stroke="currentColor" stroke-opacity="{0.35 if tick == 0 else 0.12}"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="currentColor">{escape(fmt(value))}</text>'
        )
    count = len(x_labels)
    every = max(1, -(-count // 8))  # at most about eight labels
    for n, label in enumerate(x_labels):
        last = n == count - 1
        if (n % every and not last) or (not last and count - 1 - n < every):
            continue  # every few days, and the last day without crowding it
        x = LEFT + (plot_w * (n + 0.5) / count if count else 0)
        parts.append(
            f'<text x="{x:.1f}" y="{TOP + plot_h + 18}" text-anchor="middle" font-size="11" '
            f'fill="currentColor">{escape(label)}</text>'
        )
    return parts


def _legend(series: Sequence[Series], y: int) -> list:
    parts, x = [], LEFT
    for item in series:
        parts.append(
            f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{item.colour}"/>'
            f'<text x="{x + 14}" y="{y}" font-size="11" fill="currentColor">'
            f"{escape(item.name)}</text>"
        )
        x += 24 + 7 * len(item.name)
    return parts


def line_chart(
    name: str,
    label: str,
    series: Sequence[Series],
    x_labels: Sequence[str],
    fmt: Callable[[float], str] = percent,
) -> SafeString:
    """Lines over days; a None value (nothing to measure that day) breaks the line."""
    legend_h = 22
    plot_h = HEIGHT - TOP - BOTTOM - legend_h
    plot_w = WIDTH - LEFT - RIGHT
    values = [v for item in series for v in item.values if _finite(v)]
    top = _nice_top(max(values, default=0.0))
    body = _axes(top, fmt, x_labels, plot_h)
    count = len(x_labels)
    for item in series:
        runs = [[]]
        for n, value in enumerate(item.values):
            if not _finite(value):
                runs.append([])
                continue
            x = LEFT + plot_w * (n + 0.5) / count
            y = TOP + plot_h - plot_h * min(value, top) / top
            runs[-1].append((x, y, value, x_labels[n]))
        for points in filter(None, runs):
            body.append(
                f'<polyline fill="none" stroke="{item.colour}" stroke-width="2" points="'
                + " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
                + '"/>'
            )
            for x, y, value, day in points:
                body.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{item.colour}">'
                    f"<title>{escape(item.name)}, {escape(day)}: {escape(fmt(value))}</title>"
                    "</circle>"
                )
    body += _legend(series, HEIGHT - 6)
    return _svg(name, label, body)


def stacked_bars(
    name: str, label: str, series: Sequence[Series], x_labels: Sequence[str]
) -> SafeString:
    """Shares per day stacked to 100% (days with nothing stay empty)."""
    legend_h = 22
    plot_h = HEIGHT - TOP - BOTTOM - legend_h
    plot_w = WIDTH - LEFT - RIGHT
    body = _axes(1.0, lambda v: f"{100 * v:.0f}%", x_labels, plot_h)
    count = len(x_labels)
    bar_w = max(1.0, plot_w / max(count, 1) * 0.8)
    for n, day in enumerate(x_labels):
        total = sum(item.values[n] or 0 for item in series)
        if not total:
            continue
        x = LEFT + plot_w * (n + 0.5) / count - bar_w / 2
        y = TOP + plot_h
        for item in series:
            share = (item.values[n] or 0) / total
            if not share:
                continue
            height = plot_h * share
            y -= height
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{height:.1f}" '
                f'fill="{item.colour}"><title>{escape(item.name)}, {escape(day)}: '
                f"{100 * share:.0f}% ({int(item.values[n] or 0)})</title></rect>"
            )
    body += _legend(series, HEIGHT - 6)
    return _svg(name, label, body)


@dataclass(frozen=True)
class Interval:
    name: str
    colour: str
    value: float | None
    low: float
    high: float
    note: str = ""


def interval_chart(
    name: str, label: str, rows: Sequence[Interval], fmt: Callable[[float], str] = percent
) -> SafeString:
    """One row per item: its estimate as a dot and its 95% interval as a bar."""
    rows = [
        row if _finite(row.value, row.low, row.high) else Interval(row.name, row.colour, None, 0, 0)
        for row in rows
    ]
    row_h, label_w = 26, 170
    height = TOP + row_h * max(len(rows), 1) + BOTTOM
    plot_w = WIDTH - label_w - RIGHT
    top = _nice_top(max([r.high for r in rows if r.value is not None], default=0.0))
    low_bound = min([r.low for r in rows if r.value is not None] + [0.0])
    span = (top - low_bound) or 1.0

    def x_of(value: float) -> float:
        return label_w + plot_w * (min(max(value, low_bound), top) - low_bound) / span

    body = []
    for tick in range(5):
        value = low_bound + span * tick / 4
        x = x_of(value)
        body.append(
            f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{height - BOTTOM}" '
            f'stroke="currentColor" stroke-opacity="0.12"/>'
            f'<text x="{x:.1f}" y="{height - BOTTOM + 16}" text-anchor="middle" font-size="11" '
            f'fill="currentColor">{escape(fmt(value))}</text>'
        )
    for n, row in enumerate(rows):
        y = TOP + row_h * n + row_h / 2
        body.append(
            f'<text x="{label_w - 8}" y="{y + 4:.1f}" text-anchor="end" font-size="12" '
            f'fill="currentColor">{escape(row.name)}</text>'
        )
        if row.value is None:
            body.append(
                f'<text x="{label_w + 4}" y="{y + 4:.1f}" font-size="11" fill="currentColor" '
                f'fill-opacity="0.6">{escape(row.note or "no data yet")}</text>'
            )
            continue
        tip = f"{row.name}: {fmt(row.value)} (95% interval {fmt(row.low)} to {fmt(row.high)})"
        body.append(
            f'<rect x="{x_of(row.low):.1f}" y="{y - 4:.1f}" '
            f'width="{max(1.0, x_of(row.high) - x_of(row.low)):.1f}" height="8" rx="4" '
            f'fill="{row.colour}" fill-opacity="0.35"><title>{escape(tip)}</title></rect>'
            f'<circle cx="{x_of(row.value):.1f}" cy="{y:.1f}" r="5" fill="{row.colour}">'
            f"<title>{escape(tip)}</title></circle>"
        )
    return _svg(name, label, body, height=height)
