"""The merchandiser's dashboard in the admin: styles' performance, loop and rendering health."""

from __future__ import annotations

from datetime import timedelta

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from styletransfer import selectors as rendition_selectors
from styletransfer.models import Rendition, Style
from styletransfer.queues import queue_depths

from ..loop_settings import loop_settings, loop_settings_update
from ..models import Dashboard, Decision
from . import analytics, charts
from .lift import lift_report

WINDOWS = (7, 30, 90)
FAILURES_SHOWN = 20


class ExplorationForm(forms.Form):
    policy = forms.ChoiceField(
        choices=[
            ("thompson", "Thompson sampling (explores while unsure)"),
            ("softmax", "Softmax (strength is the temperature)"),
            ("greedy", "Greedy (the best guess; explores only in the uniform bucket)"),
            ("uniform", "Uniform random (no personalization, every image equally)"),
        ]
    )
    uniform_percent = forms.FloatField(
        min_value=0,
        max_value=100,
        label="Uniform bucket (%)",
        help_text="Share of images chosen at random for a shopper the model does not know "
        "(5%); it shrinks to a fifth of that as the model learns the shopper. Keeps offline "
        "evaluation honest.",
    )
    exploration_strength = forms.FloatField(
        min_value=0,
        max_value=10,
        help_text="Thompson: how far to trust uncertain guesses (0.25); softmax: temperature.",
    )


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    """One page instead of a changelist: /admin/stylerec/dashboard/."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_urls(self) -> list:
        return [
            path(
                "",
                self.admin_site.admin_view(self.dashboard_view),
                name="stylerec_dashboard_changelist",
            )
        ]

    def dashboard_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self._change(request)
        days = _window(request)
        context = {
            **self.admin_site.each_context(request),
            "title": "Dashboard",
            "opts": self.model._meta,
            "can_change": self.has_change_permission(request),
            "days": days,
            "windows": WINDOWS,
            **_performance(days),
            **_lift(days),
            **_loop(request),
            **_rendering(),
        }
        return TemplateResponse(request, "admin/stylerec/dashboard.html", context)

    def _change(self, request: HttpRequest) -> HttpResponse:
        """Staff with change_dashboard turn personalization on or off, tune exploration, and
        re-run the offline evaluation."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        action = request.POST.get("action")
        if action == "personalization":
            enabled = request.POST.get("enabled") == "on"
            loop_settings_update(personalization_enabled=enabled)
            messages.success(
                request,
                "Personalization is on."
                if enabled
                else "Personalization is off: everyone sees the original photos from now on.",
            )
        elif action == "exploration":
            form = ExplorationForm(request.POST)
            if not form.is_valid():
                return self._with_errors(request, form)
            try:
                loop_settings_update(
                    policy=form.cleaned_data["policy"],
                    uniform_share=form.cleaned_data["uniform_percent"] / 100,
                    exploration_strength=form.cleaned_data["exploration_strength"],
                )
            except ValueError as exc:
                form.add_error(None, str(exc))
                return self._with_errors(request, form)
            messages.success(request, "Exploration settings saved; they apply from now on.")
        elif action == "evaluate":
            analytics.evaluation_report(refresh=True)
            messages.success(request, "Offline evaluation computed again.")
        return HttpResponseRedirect(request.get_full_path())

    def _with_errors(self, request: HttpRequest, form: ExplorationForm) -> HttpResponse:
        for field, errors in form.errors.items():
            label = "" if field == "__all__" else f"{form.fields[field].label or field}: "
            messages.error(request, label + " ".join(errors))
        return HttpResponseRedirect(request.get_full_path())


def _window(request: HttpRequest) -> int:
    try:
        days = int(request.GET.get("days", 30))
    except ValueError:
        days = 30
    return days if days in WINDOWS else 30


def _performance(days: int) -> dict:
    since = timezone.now() - timedelta(days=days - 1)
    since = since.replace(hour=0, minute=0, second=0, microsecond=0)
    performance = analytics.style_performance(since=since)
    arms = [row.style for row in performance]
    colour = charts.colours(arms, original=Decision.ORIGINAL)
    daily = analytics.daily_performance(since=since, arms=arms)
    labels = [f"{day:%d %b}" for day in daily.days]
    ctr_by_day = [
        charts.Series(
            row.name,
            colour[row.style],
            [
                clicks / seen if seen else None
                for clicks, seen in zip(
                    daily.clicks[row.style], daily.impressions[row.style], strict=True
                )
            ],
        )
        for row in performance
    ]
    share_by_day = [
        charts.Series(row.name, colour[row.style], daily.decisions[row.style])
        for row in performance
    ]
    intervals = [
        charts.Interval(row.name, colour[row.style], row.ctr, *row.ctr_interval)
        for row in performance
    ]
    return {
        "performance": [_performance_row(row, colour[row.style]) for row in performance],
        "totals": {
            "decisions": sum(row.decisions for row in performance),
            "impressions": sum(row.impressions for row in performance),
            "clicks": sum(row.clicks for row in performance),
            "add_to_carts": sum(row.add_to_carts for row in performance),
            "purchases": sum(row.purchases for row in performance),
        },
        "unattributed": analytics.unattributed_rewards(since=since),
        "ctr_chart": charts.interval_chart(
            "ctr", "Click-through rate per style with its 95% interval", intervals
        ),
        "ctr_by_day_chart": charts.line_chart(
            "ctr-by-day", "Click-through rate per style, by day", ctr_by_day, labels
        ),
        "share_chart": charts.stacked_bars(
            "share-by-day", "Share of decisions per style, by day", share_by_day, labels
        ),
    }


LIFT_NAMES = {
    "click_rate": "Click rate (per image shown)",
    "add_to_cart_rate": "Add-to-cart rate (per image shown)",
    "purchase_rate": "Purchase rate (per image shown)",
    "revenue_per_shopper": "Revenue per shopper",
}


def _lift(days: int) -> dict:
    """Personalized against the control group, each metric with its 95% interval."""
    report = lift_report(days=days)

    def shown(value, percent: bool) -> str:
        if value is None:
            return "–"
        return f"{value:.2%}" if percent else f"{value:,.2f} {report.currency}".strip()

    rows = []
    for lift in report.lifts:
        percent = lift.metric != "revenue_per_shopper"
        rows.append(
            {
                "metric": lift.metric,
                "name": LIFT_NAMES[lift.metric],
                "personalized": shown(lift.personalized, percent),
                "control": shown(lift.control, percent),
                "difference": shown(lift.difference, percent),
                "interval": (
                    f"{shown(lift.low, percent)} to {shown(lift.high, percent)}"
                    if lift.low is not None
                    else "–"
                ),
                "relative": f"{lift.relative:+.1%}" if lift.relative is not None else "–",
                "significant": lift.excludes_zero,
            }
        )
    return {"lift": report, "lift_rows": rows}


def _performance_row(row: analytics.StylePerformance, colour: str) -> dict:
    low, high = row.ctr_interval
    return {
        "style": row.style,
        "name": row.name,
        "colour": colour,
        "decisions": row.decisions,
        "share": f"{100 * row.share:.1f}%",
        "impressions": row.impressions,
        "clicks": row.clicks,
        "ctr": f"{100 * row.ctr:.2f}%" if row.ctr is not None else "–",
        "interval": f"{100 * low:.2f}% – {100 * high:.2f}%" if row.impressions else "–",
        "add_to_carts": row.add_to_carts,
        "purchases": row.purchases,
    }


POLICY_LABELS = {
    "current": "Current policy",
    "greedy": "Greedy",
    "uniform": "Uniform random",
    "original": "Always the original",
    "best_style": "Best single style",
}


def _loop(request: HttpRequest) -> dict:
    settings = loop_settings()
    evaluation = analytics.evaluation_report()
    report = (evaluation or {}).get("report")
    rows, chart = [], None
    if report and report.get("policies"):
        for name, entry in report["policies"].items():
            label = POLICY_LABELS.get(name, name)
            if name == "best_style" and entry.get("arm"):
                label += f" ({entry['arm']})"
            rows.append({"name": name, "label": label, **entry})
        palette = {"current": charts.PALETTE[0], "uniform": charts.ORIGINAL_COLOUR}
        chart = charts.interval_chart(
            "evaluation",
            "Estimated reward per decision (doubly robust, 95% interval) per policy",
            [
                charts.Interval(
                    row["label"],
                    palette.get(row["name"], charts.PALETTE[2]),
                    row["dr"]["value"],
                    row["dr"]["low"],
                    row["dr"]["high"],
                )
                for row in rows
            ],
            fmt=lambda value: f"{value:.3f}",
        )
    form = ExplorationForm(
        initial={
            "policy": settings.policy,
            "uniform_percent": round(100 * settings.uniform_share, 2),
            "exploration_strength": settings.exploration_strength,
        }
    )
    return {
        "settings": settings,
        "exploration_form": form,
        "health": analytics.loop_health(),
        "evaluation": evaluation,
        "evaluation_rows": rows,
        "evaluation_chart": chart,
    }


def _rendering() -> dict:
    styles = list(Style.objects.order_by("-active", "name", "pk"))
    coverage = rendition_selectors.style_coverage(styles)
    rows = []
    for style in styles:
        counts = coverage[style.pk]
        total = counts["products"] or 1
        rows.append(
            {
                "style": style,
                **counts,
                "ready_percent": 100 * counts["ready"] / total,
                "pending_percent": 100 * counts["pending"] / total,
                "failed_percent": 100 * counts["failed"] / total,
            }
        )
    failures = (
        Rendition.objects.filter(status=Rendition.Status.FAILED)
        .select_related("style")
        .order_by("-finished_at", "-pk")[:FAILURES_SHOWN]
    )
    return {
        "coverage": rows,
        "queues": queue_depths(),
        "failures": failures,
        "failures_url": reverse("admin:styletransfer_rendition_changelist")
        + "?status__exact=failed",
    }
