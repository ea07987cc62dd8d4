"""Admin: read-only logs for audits, and the live loop settings (saved validated)."""

from django import forms
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


class LoopSettingsForm(forms.ModelForm):
    class Meta:
        model = LoopSettings
        fields = loop_settings.FIELDS

    def clean(self) -> dict:
        cleaned = super().clean()
        if all(field in cleaned for field in loop_settings.FIELDS):
            try:
                loop_settings.exploration_settings(LoopSettings(**cleaned))
            except ValueError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return cleaned


@admin.register(LoopSettings)
class LoopSettingsAdmin(admin.ModelAdmin):
    form = LoopSettingsForm
    list_display = ["__str__", "policy", "uniform_share", "exploration_strength", "updated_at"]

    def has_add_permission(self, request):
        return not LoopSettings.objects.exists()

    def save_model(self, request, obj, form, change):
        saved = loop_settings.loop_settings_update(
            **{field: form.cleaned_data[field] for field in loop_settings.FIELDS}
        )
        obj.pk, obj.updated_at = saved.pk, saved.updated_at
