"""Admin for merchandisers: styles with coverage and previews, renditions with their errors."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, F, Q
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from . import selectors, services
from .conf import conf
from .models import Rendition, Style, WebImageFormField, engine_choices

PREVIEW_PRODUCTS = 4
# The fast engine's style loss may be this many times the slow one's before the preview warns
# (issue 15's target for feedforward against optimize).
QUALITY_TARGET = 1.5
PRODUCT_MODE_NOTES = {
    Rendition.ProductMode.WHOLE: " — no product could be told apart from its surroundings",
    Rendition.ProductMode.SEGMENTED: " — outlined in a busy photo; check the edges",
}
PRODUCT_MODE_ROW = (
    '<div><a href="{}?style__id__exact={}&amp;product_mode__exact={}">{}: {} of {}</a>{}</div>'
)
THUMB = (
    '<img src="{}" alt="" style="width:{}px;height:{}px;object-fit:cover;border-radius:6px;'
    'background:#f2f2f4">'
)


class StyleForm(forms.ModelForm):
    # A new style starts on the model's default engine (feedforward, the catalogue-wide one),
    # not on the first choice of the list (optimize, minutes per image).
    engine = forms.ChoiceField(
        choices=engine_choices, initial=Style._meta.get_field("engine").default
    )

    class Meta:
        model = Style
        fields = ["name", "slug", "description", "reference_image", "active", *Style.RENDER_FIELDS]
        # Only the allowed formats' decoders read the upload (keeps the admin's widget).
        field_classes = {"reference_image": WebImageFormField}


@admin.register(Style)
class StyleAdmin(admin.ModelAdmin):
    form = StyleForm
    list_display = [
        "thumbnail",
        "name",
        "engine",
        "mode",
        "strength",
        "active",
        "version",
        "coverage",
        "failures",
    ]
    list_display_links = ["thumbnail", "name"]
    list_filter = ["active", "engine", "mode"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    readonly_fields = ["thumbnail", "version", "embedding_state", "onboarding", "product_modes"]
    actions = ["activate", "deactivate", "retry_failed"]
    fieldsets = [
        (
            None,
            {"fields": ["name", "slug", "description", "reference_image", "thumbnail", "active"]},
        ),
        ("Rendering", {"fields": list(Style.RENDER_FIELDS)}),
        ("State", {"fields": ["version", "embedding_state", "onboarding", "product_modes"]}),
    ]

    def get_queryset(self, request):
        current = Q(renditions__style_version=F("version"))
        return (
            super()
            .get_queryset(request)
            .annotate(
                ready_count=Count("renditions", filter=current & Q(renditions__status="ready")),
                failed_count=Count("renditions", filter=current & Q(renditions__status="failed")),
            )
        )

    def save_model(self, request, obj, form, change):
        services.style_save(style=obj)

    @admin.display(description="Reference")
    def thumbnail(self, style: Style) -> str:
        if not style.reference_image:
            return "—"
        return format_html(THUMB, style.reference_image.url, 64, 64)

    @admin.display(description="Coverage", ordering="ready_count")
    def coverage(self, style: Style) -> str:
        total = selectors.catalog_size()
        share = 100 * min(style.ready_count, total) / total if total else 0
        return f"{style.ready_count}/{total} ready ({share:.0f}%)"

    @admin.display(description="Failed", ordering="failed_count")
    def failures(self, style: Style) -> str:
        if not style.failed_count:
            return "0"
        url = reverse("admin:styletransfer_rendition_changelist")
        return format_html(
            '<a href="{}?style__id__exact={}&status__exact=failed">{}</a>',
            url,
            style.pk,
            style.failed_count,
        )

    @admin.display(description="Embedding")
    def embedding_state(self, style: Style) -> str:
        if style.embedding and style.embedding_hash == style.reference_hash:
            return f"{len(style.embedding)} numbers, up to date"
        return "being computed by a render worker"

    @admin.display(description="Onboarding")
    def onboarding(self, style: Style) -> str:
        if style.onboarding_reference != style.reference_hash or not style.onboarding_state:
            return "not onboarded for this reference image"
        if style.onboarding_state == "failed":
            return f"failed: {style.onboarding_error}"
        if style.onboarding_state != "ready":
            return f"{style.onboarding_state} on a render worker"
        ratio = (style.quality or {}).get("ratio")
        return f"ready: feedforward style loss {ratio}x the optimize engine's (see the preview)"

    @admin.display(description="Product found by")
    def product_modes(self, style: Style) -> str:
        """Ready renditions of this version per product mode, so a merchandiser sees which
        photos fell back to the whole image."""
        if style.pk is None:
            return "—"
        if style.mode != "product":
            return "whole-image style: every photo is painted whole"
        ready = Rendition.objects.filter(
            style=style, style_version=style.version, status=Rendition.Status.READY
        )
        by_mode = ready.order_by().values("product_mode").annotate(count=Count("pk"))
        counts = {row["product_mode"]: row["count"] for row in by_mode}
        total = sum(counts.values())
        if not total:
            return "no ready renditions of this version yet"
        url = reverse("admin:styletransfer_rendition_changelist")
        rows = [
            (url, style.pk, value, label, counts[value], total, PRODUCT_MODE_NOTES.get(value, ""))
            for value, label in [*Rendition.ProductMode.choices, ("", "not recorded")]
            if counts.get(value)
        ]
        return format_html_join("", PRODUCT_MODE_ROW, rows)

    @admin.action(description="Activate: render for the whole catalogue and show to shoppers")
    def activate(self, request, queryset):
        for style in queryset:
            services.style_set_active(style=style, active=True)
        self.message_user(request, f"Activated {queryset.count()} style(s); renders are queued.")

    @admin.action(description="Deactivate: stop showing")
    def deactivate(self, request, queryset):
        for style in queryset:
            services.style_set_active(style=style, active=False)
        self.message_user(request, f"Deactivated {queryset.count()} style(s).")

    @admin.action(description="Retry failed renditions")
    def retry_failed(self, request, queryset):
        failed = Rendition.objects.filter(style__in=queryset, status=Rendition.Status.FAILED)
        count = 0
        for rendition in failed:
            services.rendition_retry(rendition=rendition)
            count += 1
        self.message_user(request, f"Queued {count} failed rendition(s) again.")

    def get_urls(self):
        preview = self.admin_site.admin_view(self.preview_view)
        switch = self.admin_site.admin_view(self.switch_engine_view)
        return [
            path("<int:style_id>/preview/", preview, name="styletransfer_style_preview"),
            path("<int:style_id>/engine/", switch, name="styletransfer_style_engine"),
        ] + super().get_urls()

    def switch_engine_view(self, request: HttpRequest, style_id: int) -> HttpResponse:
        """POST engine=<name>: the preview's offer to render with the other engine."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        style = get_object_or_404(Style, pk=style_id)
        if not self.has_change_permission(request, style):
            raise PermissionDenied
        engine = request.POST.get("engine", "")
        if engine not in ("optimize", "feedforward"):
            self.message_user(request, "Choose the optimize or the feedforward engine.", "error")
        else:
            style.engine = engine
            services.style_save(style=style)
            self.message_user(request, f"{style.name} now renders with the {engine} engine.")
        return redirect("admin:styletransfer_style_preview", style.pk)

    def preview_view(self, request: HttpRequest, style_id: int) -> HttpResponse:
        """Render a few products in this style, active or not, beside the originals."""
        style = get_object_or_404(Style, pk=style_id)
        if not self.has_view_permission(request, style):
            raise PermissionDenied
        products = list(conf.product_model()._default_manager.order_by("pk")[:PREVIEW_PRODUCTS])
        sources = services.source_images_of(products)
        pairs = []
        for product in products:
            source = sources.get(product.pk)
            rendition = services.rendition_request(source=source, style=style) if source else None
            pairs.append(
                {
                    "product": product,
                    "original": conf.product_images(product)[0],
                    "rendition": rendition,
                }
            )
        waiting = any(
            p["rendition"] and p["rendition"].status in ("pending", "rendering") for p in pairs
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "style": style,
            "pairs": pairs,
            "waiting": waiting,
            "quality": quality_summary(style),
            "can_change": self.has_change_permission(request, style),
            "title": f"Preview of {style.name}",
        }
        return TemplateResponse(request, "admin/styletransfer/style/preview.html", context)


def quality_summary(style: Style) -> dict | None:
    """The onboarding's figures for the preview, with the verdict against QUALITY_TARGET."""
    figures = style.quality
    if not figures or style.onboarding_reference != style.reference_hash:
        return None
    ratio = figures.get("ratio")
    rows = []
    for key, label in (
        ("feedforward", "feedforward (onboarded)"),
        ("feedforward_base", "feedforward (shipped decoder)"),
        ("optimize", "optimize"),
    ):
        row = figures.get(key) or {}
        style_loss, content = row.get("style_loss"), row.get("content_change")
        rows.append({"engine": label, "style_loss": style_loss, "content": content})
    return {
        "rows": rows,
        "ratio": ratio,
        "worst_ratio": figures.get("worst_ratio"),
        "base_ratio": figures.get("base_ratio"),
        "samples": figures.get("samples"),
        "size": figures.get("size"),
        "target": QUALITY_TARGET,
        "falls_short": ratio is not None and ratio > QUALITY_TARGET,
        "other_engine": "optimize" if style.engine == "feedforward" else "feedforward",
    }


@admin.register(Rendition)
class RenditionAdmin(admin.ModelAdmin):
    list_display = [
        "image",
        "style",
        "style_version",
        "status",
        "short_error",
        "engine",
        "device",
        "product_mode",
        "widths",
        "render_seconds",
        "attempts",
        "finished_at",
    ]
    list_filter = ["status", "style", "product_mode", "engine", "device"]
    search_fields = ["source_hash", "error", "source_name"]
    actions = ["retry"]
    list_select_related = ["style"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Image")
    def image(self, rendition: Rendition) -> str:
        if rendition.status != Rendition.Status.READY or not rendition.file:
            return "—"
        return format_html(THUMB, rendition.file.url, 64, 64)

    @admin.display(description="Widths")
    def widths(self, rendition: Rendition) -> str:
        """Every width stored (WIDTHS), the rendition's own last."""
        if not rendition.width:
            return "—"
        return ", ".join(str(w) for w in [*(v[0] for v in rendition.variants), rendition.width])

    @admin.display(description="Error")
    def short_error(self, rendition: Rendition) -> str:
        return rendition.error[:120]

    def delete_model(self, request, obj):
        services.renditions_delete(renditions=Rendition.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        services.renditions_delete(renditions=queryset)

    @admin.action(description="Retry the selected failed renditions")
    def retry(self, request, queryset):
        failed = list(queryset.filter(status=Rendition.Status.FAILED))
        for rendition in failed:
            services.rendition_retry(rendition=rendition)
        level = messages.SUCCESS if failed else messages.WARNING
        self.message_user(request, f"Queued {len(failed)} failed rendition(s) again.", level)
