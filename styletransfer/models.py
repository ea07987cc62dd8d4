"""Styles a merchandiser manages, the product images they apply to, and their renditions."""

from django import forms
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from . import keys
from .conf import conf
from .engines.errors import InputImageError
from .engines.params import ENGINE_NAMES, MODES, RenderParams


def validate_engine(value: str) -> None:
    if value not in ENGINE_NAMES:
        raise ValidationError(f"Unknown engine {value!r}; choose one of {', '.join(ENGINE_NAMES)}.")


def engine_choices() -> list[tuple[str, str]]:
    return [(name, name) for name in ENGINE_NAMES]


class WebImageFormField(forms.ImageField):
    """An image upload that only the decoders of STYLETRANSFER['IMAGE_FORMATS'] ever read.

    Django's ImageField lets every Pillow plugin identify an upload; this one refuses any
    other format (and images over MAX_SOURCE_PIXELS) first, saying why.
    """

    def to_python(self, data):
        upload = forms.FileField.to_python(self, data)
        if upload is None:
            return None
        from PIL import Image

        from .engines.images import check_image  # Pillow's codecs: only once a file arrives

        if hasattr(upload, "temporary_file_path"):
            source = upload.temporary_file_path()
        else:
            upload.seek(0)
            source = upload
        try:
            image_format = check_image(
                source, max_pixels=conf.MAX_SOURCE_PIXELS, formats=conf.IMAGE_FORMATS
            )
        except InputImageError as exc:
            reason = str(exc)
            raise ValidationError(
                f"{reason[:1].upper()}{reason[1:]}.", code="invalid_image"
            ) from exc
        finally:
            upload.seek(0)
        upload.content_type = Image.MIME.get(image_format)
        return upload


class OnboardingState(models.TextChoices):
    PENDING = "pending"
    TUNING = "tuning"
    READY = "ready"
    FAILED = "failed"


class Style(models.Model):
    """A look products can be shown in: a reference image plus how to render it."""

    # The fields that decide a rendition's pixels (besides the reference image).
    RENDER_FIELDS = ("engine", "mode", "strength", "preserve_colors", "size", "steps", "sharpen")

    MODE_CHOICES = [
        ("product", "product: keep the product's true colours, paint the backdrop"),
        ("whole", "whole: stylise the whole photo"),
    ]

    name = models.CharField(max_length=100)
    slug = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    reference_image = models.ImageField(upload_to="styles/")
    # Validated against the engine registry rather than stored choices, so adding an
    # engine needs no migration.
    engine = models.CharField(max_length=20, default="feedforward", validators=[validate_engine])
    strength = models.PositiveSmallIntegerField(
        default=70, validators=[MinValueValidator(0), MaxValueValidator(100)]
    )
    mode = models.CharField(max_length=10, choices=MODE_CHOICES, default="product")
    preserve_colors = models.BooleanField(default=False)
    size = models.PositiveIntegerField(
        default=512,
        validators=[MinValueValidator(64), MaxValueValidator(2048)],
        help_text="Longest side of the rendition in pixels, unless the shop sets "
        "STYLETRANSFER['WIDTHS'] (then the largest of them).",
    )
    steps = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(2000)],
        help_text="Optimisation steps (optimize engine); empty for the engine's default.",
    )
    sharpen = models.FloatField(
        default=0.0, validators=[MinValueValidator(0), MaxValueValidator(1)]
    )
    active = models.BooleanField(
        default=False, help_text="Active styles are rendered for the whole catalogue and shown."
    )
    # Changes whenever anything that affects pixels changes (reference image or parameters).
    version = models.PositiveIntegerField(default=1, editable=False)
    reference_hash = models.CharField(max_length=64, editable=False, blank=True)
    params_hash = models.CharField(max_length=64, editable=False, blank=True)
    # Feature statistics of the reference image (VGG19), so a new style is never cold.
    embedding = models.JSONField(null=True, blank=True, editable=False)
    embedding_hash = models.CharField(max_length=64, editable=False, blank=True)
    # Onboarding (styletransfer/onboarding.py): a short fine-tune of the feedforward decoder
    # for this reference image, run on the render queue. Its adapter enters the rendition key
    # only once ready and only for the reference it was tuned on.
    onboarding_state = models.CharField(
        max_length=10, choices=OnboardingState.choices, blank=True, editable=False
    )
    onboarding_reference = models.CharField(max_length=64, blank=True, editable=False)
    adapter_sha256 = models.CharField(max_length=64, blank=True, editable=False)
    onboarding_error = models.TextField(blank=True, editable=False)
    # Style loss and content change of both engines on sample products (quality_figures).
    quality = models.JSONField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        """Bump the version when the pixels would change, so stale renditions are never served."""
        if self.reference_image and not self.reference_image._committed:
            # A fresh upload: hash it in place, since closing it would lose it before it is stored.
            self.reference_hash = keys.file_hash(self.reference_image.file)
        elif self.reference_image:
            with self.reference_image.open("rb") as fh:
                self.reference_hash = keys.file_hash(fh)
        new_params_hash = keys.params_hash(self.render_params().canonical(), self.reference_hash)
        if self.params_hash and new_params_hash != self.params_hash:
            self.version += 1
        self.params_hash = new_params_hash
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {
                *kwargs["update_fields"],
                "version",
                "reference_hash",
                "params_hash",
            }
        super().save(*args, **kwargs)

    @property
    def adapter(self) -> str:
        """The onboarded adapter's sha256, while it belongs to the current reference image."""
        tuned_here = self.onboarding_reference and self.onboarding_reference == self.reference_hash
        ready = self.onboarding_state == OnboardingState.READY
        return self.adapter_sha256 if tuned_here and ready else ""

    def needs_onboarding(self) -> bool:
        """A feedforward style (the only engine an adapter tunes) with no adapter, tuning or
        failure recorded yet for the current reference image."""
        return (
            self.engine == "feedforward"
            and bool(self.reference_hash)
            and self.onboarding_reference != self.reference_hash
        )

    def render_params(self) -> RenderParams:
        widths = conf.widths()
        return RenderParams(
            engine=self.engine,
            strength=self.strength,
            mode=self.mode,
            preserve_colors=self.preserve_colors,
            size=widths[-1] if widths else self.size,  # the shop's widths decide the size
            widths=widths,
            steps=self.steps,
            sharpen=self.sharpen,
            adapter=self.adapter if self.engine == "feedforward" else "",
        )

    def clean(self) -> None:
        if self.mode not in MODES:
            raise ValidationError({"mode": f"Choose one of {', '.join(MODES)}."})
        try:
            self.render_params().validate()
        except ValueError as exc:
            raise ValidationError(str(exc)) from exc


class SourceImage(models.Model):
    """One image of one product in the shop, with the hash that keys its renditions."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.CharField(max_length=64)
    position = models.PositiveSmallIntegerField(default=0, help_text="0 is the primary image.")
    name = models.CharField(max_length=500, help_text="Storage name of the image file.")
    content_hash = models.CharField(max_length=64, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["content_type", "object_id", "position"], name="unique_source_image"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.content_hash[:8]})"


class Rendition(models.Model):
    """One stylised image of one source image in one style version. Rendered once per key."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RENDERING = "rendering"
        READY = "ready"
        FAILED = "failed"

    class ProductMode(models.TextChoices):
        """How product mode told the product apart (engines.images.PRODUCT_MODES)."""

        CUTOUT = "cutout", "cut-out (transparent background)"
        BACKDROP = "backdrop", "plain background"
        SEGMENTED = "segmented", "segmented from its surroundings"
        WHOLE = "whole", "whole image"

    source_hash = models.CharField(max_length=64)
    style = models.ForeignKey(Style, on_delete=models.CASCADE, related_name="renditions")
    style_version = models.PositiveIntegerField()
    params_hash = models.CharField(max_length=64)
    # Where to read the source from: any stored file whose content has source_hash.
    source_name = models.CharField(max_length=500)
    status = models.CharField(
        max_length=10, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    file = models.FileField(max_length=500, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    # The smaller widths stored besides `file` (STYLETRANSFER["WIDTHS"]): [[width, height,
    # name], ...] ascending, so a srcset names only files that exist.
    variants = models.JSONField(default=list, blank=True)
    engine = models.CharField(max_length=20, blank=True)
    device = models.CharField(max_length=20, blank=True)
    # Empty for styles in whole mode and for renditions made before it was recorded.
    product_mode = models.CharField(max_length=10, choices=ProductMode.choices, blank=True)
    # The Celery task that claimed the render; its redelivery may take over at once.
    task_id = models.CharField(max_length=64, blank=True)
    render_seconds = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    enqueued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    # Refreshed by the rendering worker while it renders (database clock); a claim whose
    # heartbeat stopped is dead and is rendered again. Null for claims of workers sending none.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["source_hash", "style", "style_version", "params_hash"],
                name="unique_rendition_key",
            )
        ]
        indexes = [models.Index(fields=["style", "status"])]

    def __str__(self) -> str:
        return f"{self.style} v{self.style_version} of {self.source_hash[:8]} ({self.status})"
