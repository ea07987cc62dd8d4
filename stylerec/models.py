"""Shoppers, the decisions made for them, what they did, and the fitted preference model."""

import secrets

from django.conf import settings
from django.db import models


def _new_token() -> str:
    return secrets.token_urlsafe(32)


class Shopper(models.Model):
    """Someone browsing: an account, a web session, or a fresh app install."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="shopper",
    )
    # Anonymous app installs authenticate with this token; merged away on sign-in.
    token = models.CharField(max_length=64, unique=True, default=_new_token, editable=False)
    # Shoppers who asked to see the original photos only.
    originals_only = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    # Not stored: True on a shopper this request created, who has no decision or profile yet
    # (the chooser then looks for none).
    history_empty = False

    def __str__(self) -> str:
        return f"shopper {self.pk}" + (f" ({self.user})" if self.user_id else " (anonymous)")


class Decision(models.Model):
    """One choice of image for one shopper and product, with every candidate's probability.

    The logged probabilities are what make honest offline evaluation possible.
    """

    ORIGINAL = "original"
    ORIGINAL_NAME = "Original photo"  # how shoppers and merchandisers see that arm named

    shopper = models.ForeignKey(Shopper, on_delete=models.CASCADE, related_name="decisions")
    product_id = models.CharField(max_length=64)
    # Arms as style slugs, "original" for the unstyled photo; probabilities in the same order.
    candidates = models.JSONField()
    probabilities = models.JSONField()
    chosen = models.CharField(max_length=100)
    propensity = models.FloatField()
    model_version = models.CharField(max_length=64)
    policy = models.CharField(max_length=20)
    context = models.JSONField(default=dict, blank=True)
    # The epoch of the draw (stylerec.serving.assignment): model version and re-draw period.
    # Views of the product within it reuse this decision; "" for decisions logged before.
    assignment = models.CharField(max_length=100, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["shopper", "assignment", "product_id"])]

    def __str__(self) -> str:
        return f"decision {self.pk}: {self.chosen} for product {self.product_id}"


class Event(models.Model):
    """Append-only record of what a shopper did with a personalized image."""

    class Kind(models.TextChoices):
        IMPRESSION = "impression"
        CLICK = "click"
        ADD_TO_CART = "add_to_cart"
        PURCHASE = "purchase"

    REWARDS = (Kind.CLICK, Kind.ADD_TO_CART, Kind.PURCHASE)

    shopper = models.ForeignKey(Shopper, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    decision = models.ForeignKey(
        Decision, null=True, blank=True, on_delete=models.CASCADE, related_name="events"
    )
    product_id = models.CharField(max_length=64)
    style_slug = models.CharField(max_length=100, blank=True)
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(auto_now_add=True)
    source = models.CharField(max_length=20, default="api")
    # What an add-to-cart or purchase was worth, in `currency` (ISO 4217): revenue per shopper,
    # and rewards weighted by value (STYLEREC["REWARD_BY_VALUE"]).
    value = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True, default="")

    class Meta:
        constraints = [
            # A retried batch repeats the same (shopper, kind, decision, product, time).
            models.UniqueConstraint(
                fields=["shopper", "kind", "decision", "product_id", "occurred_at"],
                name="unique_event",
            )
        ]
        indexes = [models.Index(fields=["decision", "kind"]), models.Index(fields=["received_at"])]

    def __str__(self) -> str:
        return f"{self.kind} by {self.shopper_id} on {self.product_id}"


class PreferenceModel(models.Model):
    """One fit of the preference model: the style space, the population, and its figures."""

    version = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # {"space": StyleSpace.to_dict(), "population": Preference.to_dict(), "noise_var": float}
    payload = models.JSONField()
    # Style slug -> arm features at fit time, for the dashboard and evaluation.
    arms = models.JSONField(default=dict)
    fit_seconds = models.FloatField()
    shoppers = models.PositiveIntegerField()
    decisions = models.PositiveIntegerField()
    incremental = models.BooleanField(default=False)

    class Meta:
        get_latest_by = "created_at"
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.version


class ShopperProfile(models.Model):
    """A shopper's fitted preference (mean and covariance over the style space)."""

    shopper = models.OneToOneField(Shopper, on_delete=models.CASCADE, related_name="profile")
    model_version = models.CharField(max_length=64)
    preference = models.BinaryField()  # Preference.to_bytes(): float32 mean + covariance
    decisions = models.FloatField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"profile of {self.shopper_id} ({self.model_version})"


class LoopSettings(models.Model):
    """Live exploration settings staff change on the dashboard (a single row)."""

    personalization_enabled = models.BooleanField(default=True)
    policy = models.CharField(max_length=20, default="thompson")
    uniform_share = models.FloatField(default=0.05)
    exploration_strength = models.FloatField(default=0.25)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "loop settings"

    def __str__(self) -> str:
        return "personalization " + ("on" if self.personalization_enabled else "off")


class Dashboard(LoopSettings):
    """The merchandiser's dashboard in the admin. A proxy (no table) so that it has its own
    admin page and permissions: view_dashboard to look, change_dashboard to change the loop."""

    class Meta:
        proxy = True
        verbose_name = verbose_name_plural = "dashboard"
