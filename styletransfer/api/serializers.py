"""Serializers of the styletransfer API: public styles, staff style management, renditions."""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..engines.params import ENGINE_NAMES
from ..models import Rendition, Style, WebImageFormField
from .base import StrictBooleanField

# Reference paintings are photos, not posters: anything larger is a mistake or an attack.
MAX_REFERENCE_BYTES = 10 * 1024 * 1024


class ReferenceImageField(serializers.ImageField):
    """A style's reference upload: its size first, then only the allowed formats' decoders."""

    def __init__(self, **kwargs) -> None:
        super().__init__(_DjangoImageField=WebImageFormField, **kwargs)

    def to_internal_value(self, data):
        if getattr(data, "size", 0) > MAX_REFERENCE_BYTES:
            raise serializers.ValidationError(
                f"The image is larger than {MAX_REFERENCE_BYTES // (1024 * 1024)} MB."
            )
        return super().to_internal_value(data)


class StyleSerializer(serializers.ModelSerializer):
    """A style as shoppers and apps see it."""

    reference_image = serializers.ImageField(read_only=True)

    class Meta:
        model = Style
        fields = ["id", "slug", "name", "description", "reference_image"]


class CoverageSerializer(serializers.Serializer):
    """Renditions of the style's current version by state, against the catalogue size."""

    products = serializers.IntegerField()
    ready = serializers.IntegerField()
    pending = serializers.IntegerField(help_text="Waiting for or being rendered.")
    failed = serializers.IntegerField()


class StaffStyleSerializer(serializers.ModelSerializer):
    """A style with everything staff can set, and how far its renditions are."""

    engine = serializers.ChoiceField(
        choices=ENGINE_NAMES, default=Style._meta.get_field("engine").default
    )
    mode = serializers.ChoiceField(
        choices=[m for m, _ in Style.MODE_CHOICES], default=Style._meta.get_field("mode").default
    )
    preserve_colors = StrictBooleanField(default=False)
    reference_image = ReferenceImageField(
        max_length=Style._meta.get_field("reference_image").max_length
    )
    embedding_ready = serializers.SerializerMethodField(
        help_text="Whether the recommender can score the style (its embedding is computed)."
    )
    coverage = serializers.SerializerMethodField()

    class Meta:
        model = Style
        fields = [
            "id",
            "name",
            "slug",
            "description",
            "reference_image",
            *Style.RENDER_FIELDS,
            "active",
            "version",
            "embedding_ready",
            "coverage",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["active", "version", "created_at", "updated_at"]

    def get_embedding_ready(self, style: Style) -> bool:
        return bool(style.embedding) and style.embedding_hash == style.reference_hash

    @extend_schema_field(CoverageSerializer)
    def get_coverage(self, style: Style) -> dict:
        return self.context["coverage"][style.pk]

    def validate_sharpen(self, value: float) -> float:
        if value != value:  # NaN passes the range validators
            raise serializers.ValidationError("A valid number is required.")
        return value


class RenditionSerializer(serializers.ModelSerializer):
    """One rendition with its state; `error` says why a failed one failed."""

    style = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    file = serializers.FileField(read_only=True, allow_null=True)

    class Meta:
        model = Rendition
        fields = [
            "id",
            "style",
            "style_version",
            "status",
            "error",
            "attempts",
            "source_name",
            "file",
            "width",
            "height",
            "engine",
            "device",
            "render_seconds",
            "created_at",
            "enqueued_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class RenditionFilterSerializer(serializers.Serializer):
    """Query parameters of the renditions list."""

    # Blank is "any", as a form sends an unset filter.
    status = serializers.ChoiceField(
        choices=Rendition.Status.choices, required=False, allow_blank=True
    )
    style = serializers.RegexField(
        r"^[0-9]*$", max_length=18, required=False, allow_blank=True, help_text="Style id."
    )


class QueuedSerializer(serializers.Serializer):
    queued = serializers.IntegerField(help_text="Renditions sent to the render queue again.")


class CatchUpSerializer(serializers.Serializer):
    styles_behind = serializers.IntegerField(
        help_text="Active styles whose catalogue render was started again."
    )


class RenderingHealthSerializer(serializers.Serializer):
    """Coverage of every style and the depth of the render queues."""

    catalog_size = serializers.IntegerField()
    queues = serializers.DictField(
        child=serializers.IntegerField(allow_null=True),
        help_text="Messages waiting per Celery queue; null when the broker cannot tell.",
    )
    failed = serializers.IntegerField(help_text="Failed renditions of current style versions.")
    styles = StaffStyleSerializer(many=True)
