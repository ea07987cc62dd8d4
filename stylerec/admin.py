"""Admin: read-only logs for audits, and the live loop settings."""

from django.contrib import admin

from . import loop_settings
from .dashboard import admin as dashboard_admin  # noqa: F401  (registers the dashboard page)
from .models import Decision, Event, LoopSettings, PreferenceModel, Shopper


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Shopper)
class ShopperAdmin(ReadOnlyAdmin):
    list_display = ["id", "user", "originals_only", "created_at"]
    search_fields = ["user__username"]
    exclude = ["token"]


@admin.register(Decision)
class DecisionAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "shopper",
        "product_id",
        "chosen",
        "propensity",
        "policy",
        "model_version",
        "created_at",
    ]
    list_filter = ["chosen", "policy", "created_at"]
    list_select_related = ["shopper__user"]


@admin.register(Event)
class EventAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "kind",
        "shopper",
        "product_id",
        "style_slug",
        "decision_id",
        "occurred_at",
        "source",
    ]
    list_filter = ["kind", "source", "style_slug"]
    list_select_related = ["shopper__user"]


@admin.register(PreferenceModel)
class PreferenceModelAdmin(ReadOnlyAdmin):
    list_display = ["version", "created_at", "shoppers", "decisions", "fit_seconds"]
    exclude = ["payload"]


@admin.register(LoopSettings)
class LoopSettingsAdmin(admin.ModelAdmin):
    list_display = ["__str__", "policy", "uniform_share", "exploration_strength", "updated_at"]

    def has_add_permission(self, request):
        return not LoopSettings.objects.exists()

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        loop_settings.loop_settings_changed()
