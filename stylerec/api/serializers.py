"""Serializers of the stylerec API: the events contract and what shoppers see."""

import functools
import re

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from styletransfer.api.base import MAX_ID, StrictBooleanField, parse_id
from styletransfer.conf import conf as styletransfer_conf

from .. import events
from ..conf import conf
from ..events import EventRejected
from ..models import Event

# The API's names for the parts of an event that stylerec.events checks.
FIELDS = {
    "occurred_at": "ts",
    "decision": "decision",
    "product_id": "product",
    "events": "events",
    "value": "value",
    "currency": "currency",
}


def _rejected(exc: EventRejected, *, field_level: bool = False) -> serializers.ValidationError:
    if field_level:
        return serializers.ValidationError(str(exc))
    return serializers.ValidationError({FIELDS[exc.part]: [str(exc)]})


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "minimum": 1, "maximum": MAX_ID},
            {"type": "string", "pattern": "^[0-9]{1,19}$"},
        ],
        "description": "A JSON number or its digits in a string, as `data-decision` has it.",
    }
)
class DecisionIdField(serializers.Field):
    """A decision id as a JSON number or a numeric string, read as the view looks it up
    (styletransfer.api.base.parse_id): 49 and "49" are the same decision, 49.0 and " 49" none."""

    default_error_messages = {
        "invalid": "A decision id: a whole number, or its digits in a string."
    }

    def to_internal_value(self, data) -> int:
        number = (
            None if isinstance(data, bool) or not isinstance(data, int | str) else parse_id(data)
        )
        if number is None:
            self.fail("invalid")
        return number

    def to_representation(self, value) -> int:
        return int(value)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "minimum": 0},
            {"type": "string", "minLength": 1, "maxLength": 64},
        ],
        "description": "The product's id: a JSON number or a string, as `data-product` has it.",
    }
)
class ProductIdField(serializers.Field):
    """A product id as a JSON integer or a string (keys need not be numbers in every shop)."""

    default_error_messages = {
        "invalid": "A product id: a whole number or a string of 1-64 characters."
    }

    def to_internal_value(self, data) -> str:
        if isinstance(data, int) and not isinstance(data, bool) and data >= 0:
            return str(data)
        if isinstance(data, str) and 0 < len(data) <= 64 and "\x00" not in data:
            return data
        self.fail("invalid")

    def to_representation(self, value) -> str:
        return str(value)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "number", "minimum": 0, "maximum": float(events.MAX_VALUE)},
            {"type": "string", "pattern": r"^[0-9]{1,10}(\.[0-9]{1,4})?$"},
        ],
        "nullable": True,
        "description": 'add_to_cart and purchase: what it was worth, e.g. 19.99 or "19.99".',
    }
)
class ValueField(serializers.Field):
    """A value as a JSON number or a decimal string; stylerec.events.check_value judges it."""

    default_error_messages = {"invalid": "A value is a number from 0, e.g. 19.99."}
    _DECIMAL = re.compile(r"[0-9]{1,10}(\.[0-9]{1,4})?")

    def to_internal_value(self, data):
        if isinstance(data, int | float) and not isinstance(data, bool):
            return data
        if isinstance(data, str) and self._DECIMAL.fullmatch(data):
            return data
        self.fail("invalid")

    def to_representation(self, value) -> str:
        return str(value)


class EventSerializer(serializers.Serializer):
    """The wire form of an event; the rules it must keep are stylerec.events'."""

    type = serializers.ChoiceField(choices=Event.Kind.choices)
    decision = DecisionIdField(required=False, allow_null=True)
    product = ProductIdField()
    ts = serializers.DateTimeField(required=False, allow_null=True)
    value = ValueField(required=False, allow_null=True)
    currency = serializers.CharField(
        max_length=3,
        required=False,
        allow_blank=True,
        help_text="ISO 4217 code of `value` (default: the shop's STYLEREC['CURRENCY']).",
    )

    def validate_ts(self, value):
        try:
            events.check_occurred_at(value)
        except EventRejected as exc:
            raise _rejected(exc, field_level=True) from exc
        return value

    def validate(self, attrs):
        try:
            events.check_decision(
                kind=attrs["type"],
                product_id=attrs["product"],
                decision_id=attrs.get("decision"),
                decisions=self.context.get("decisions", {}),
            )
            attrs["value"], attrs["currency"] = events.check_value(
                kind=attrs["type"], value=attrs.get("value"), currency=attrs.get("currency")
            )
        except EventRejected as exc:
            raise _rejected(exc) from exc
        return attrs


class EventBatchSerializer(serializers.Serializer):
    events = EventSerializer(many=True, allow_empty=False)

    def validate_events(self, value):
        try:
            events.check_batch_size(len(value))
        except EventRejected as exc:
            raise _rejected(exc, field_level=True) from exc
        return value

    def to_internal_value(self, data):
        # Refuse oversized batches before validating thousands of items.
        batch = data.get("events") if isinstance(data, dict) else None
        if isinstance(batch, list):
            try:
                events.check_batch_size(len(batch))
            except EventRejected as exc:
                raise _rejected(exc) from exc
        return super().to_internal_value(data)


class IngestResultSerializer(serializers.Serializer):
    stored = serializers.IntegerField()
    duplicates = serializers.IntegerField()


# --- Shoppers ----------------------------------------------------------------------------------


class ShopperSerializer(serializers.Serializer):
    """The calling shopper."""

    id = serializers.IntegerField(read_only=True)
    registered = serializers.SerializerMethodField(help_text="Signed in with an account.")
    username = serializers.SerializerMethodField()
    originals_only = StrictBooleanField(
        help_text="Show the original photos only (no personalized images)."
    )
    created_at = serializers.DateTimeField(read_only=True)

    def get_registered(self, shopper) -> bool:
        return shopper.user_id is not None

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_username(self, shopper):
        return shopper.user.get_username() if shopper.user_id else None


class ShopperUpdateSerializer(serializers.Serializer):
    originals_only = StrictBooleanField()


class AnonymousShopperSerializer(serializers.Serializer):
    token = serializers.CharField(
        help_text="Send it as `Authorization: Shopper <token>` until the shopper signs in."
    )
    shopper = ShopperSerializer()


class SignInSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, style={"input_type": "password"})
    anonymous_token = serializers.CharField(
        max_length=64,
        required=False,
        allow_blank=True,
        help_text="The install's anonymous shopper token: its history joins the account.",
    )


class SignInResultSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send it as `Authorization: Token <token>`.")
    shopper = ShopperSerializer()
    merged = serializers.BooleanField(help_text="Whether an anonymous history was merged in.")


class ForgetResultSerializer(serializers.Serializer):
    """How many records were deleted."""

    events = serializers.IntegerField()
    decisions = serializers.IntegerField()
    profiles = serializers.IntegerField()


# --- Products ----------------------------------------------------------------------------------


class ProductQuerySerializer(serializers.Serializer):
    # Blank is "any", as a form sends an unset filter.
    category = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text="Only products of this category.",
    )
    search = serializers.CharField(
        max_length=100,
        required=False,
        allow_blank=True,
        help_text="Only products whose text contains this.",
    )


class ImageWidthSerializer(serializers.Serializer):
    width = serializers.IntegerField(help_text="Width of this file in px.")
    url = serializers.URLField()


class PersonalizedImageSerializer(serializers.Serializer):
    """The image chosen for the calling shopper, and the decision events must name."""

    url = serializers.URLField(allow_null=True, help_text="The image at its largest width.")
    srcset = ImageWidthSerializer(
        many=True,
        help_text="The same image at each width stored (STYLETRANSFER['WIDTHS']), narrowest "
        "first; empty when it has one size. A client picks the narrowest one that covers its "
        "view.",
    )
    style = serializers.CharField(help_text="Style slug, or `original`.")
    decision = serializers.IntegerField(
        allow_null=True,
        help_text="Send it with impression and click events; null when nothing was decided "
        "(personalization off, original photos asked for, or an unidentified caller).",
    )


class DefaultProductSerializer(serializers.Serializer):
    """A product as any shop has it: its page and price where the model has them (a shop
    names its own serializer in STYLEREC['PRODUCT_SERIALIZER'] for anything more)."""

    id = serializers.CharField(source="pk", read_only=True)
    name = serializers.CharField(source="__str__", read_only=True)
    url = serializers.SerializerMethodField(help_text="The product's page in the web shop.")
    price = serializers.SerializerMethodField(
        help_text="STYLEREC['PRODUCT_PRICE_FIELD'] of the product, as the shop stores it."
    )

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_url(self, product):
        try:
            url = product.get_absolute_url()
        except Exception:  # none, or one that cannot reverse: no link rather than an error
            return None
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_price(self, product):
        field = conf.PRODUCT_PRICE_FIELD
        value = getattr(product, field, None) if field else None
        return None if value is None else str(value)


class ProductImagesSerializer(serializers.Serializer):
    """The fields stylerec adds to the shop's product serializer."""

    image = serializers.SerializerMethodField(help_text="The original product photo.")
    personalized = serializers.SerializerMethodField()

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_image(self, product):
        images = styletransfer_conf.product_images(product)
        if not images:
            return None
        return self._absolute(styletransfer_conf.original_url(images[0]) or images[0].url)

    @extend_schema_field(PersonalizedImageSerializer)
    def get_personalized(self, product) -> dict:
        shown = self.context["shown"][product.pk]
        return {
            "url": self._absolute(shown.url),
            "srcset": [{"width": w, "url": self._absolute(u)} for w, u in shown.srcset],
            "style": shown.style,
            "decision": shown.decision_id,
        }

    def _absolute(self, url: str):
        if not url:
            return None
        request = self.context.get("request")
        return request.build_absolute_uri(url) if request is not None else url


def product_serializer() -> type[serializers.Serializer]:
    """The shop's product serializer with stylerec's image fields added."""
    return _with_images(conf.PRODUCT_SERIALIZER or DefaultProductSerializer)


@functools.cache
def _with_images(base: type[serializers.Serializer]) -> type[serializers.Serializer]:
    attrs = {"__module__": __name__, "__doc__": base.__doc__}
    meta = getattr(base, "Meta", None)
    if isinstance(getattr(meta, "fields", None), list | tuple):
        attrs["Meta"] = type("Meta", (meta,), {"fields": [*meta.fields, "image", "personalized"]})
    return type("ProductSerializer", (base, ProductImagesSerializer), attrs)


# --- Preferences and export ----------------------------------------------------------------------


class StylePreferenceSerializer(serializers.Serializer):
    rank = serializers.IntegerField(help_text="1 is the style the shopper responds to most.")
    style = serializers.CharField(help_text="Style slug, or `original` for the plain photo.")
    name = serializers.CharField()
    verdict = serializers.CharField(help_text="The preference in words.")
    engagement_per_100_views = serializers.FloatField(
        help_text="Expected clicks (add-to-carts and purchases weighted in) per 100 views."
    )
    uncertainty_per_100_views = serializers.FloatField(
        help_text="One standard deviation of that expectation: large while still learning."
    )
    shown_percent = serializers.FloatField(
        help_text="How often this shopper is shown the style when it is available."
    )


class PreferencesSerializer(serializers.Serializer):
    summary = serializers.CharField()
    model_version = serializers.CharField(allow_null=True)
    personalized = serializers.BooleanField(
        help_text="False while the shopper has no fitted profile (the population's taste)."
    )
    decisions = serializers.IntegerField(help_text="Images the profile was fitted on.")
    styles = StylePreferenceSerializer(many=True)


class ExportedProfileSerializer(serializers.Serializer):
    model_version = serializers.CharField()
    decisions = serializers.FloatField()
    updated_at = serializers.DateTimeField()
    preference_mean = serializers.ListField(child=serializers.FloatField())
    preference_covariance = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField())
    )


class ExportedDecisionSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    product_id = serializers.CharField()
    candidates = serializers.ListField(child=serializers.CharField())
    probabilities = serializers.ListField(child=serializers.FloatField())
    chosen = serializers.CharField()
    propensity = serializers.FloatField()
    model_version = serializers.CharField()
    policy = serializers.CharField()
    context = serializers.DictField()
    created_at = serializers.DateTimeField()


class ExportedEventSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    decision_id = serializers.IntegerField(allow_null=True)
    product_id = serializers.CharField()
    style_slug = serializers.CharField()
    occurred_at = serializers.DateTimeField()
    received_at = serializers.DateTimeField()
    source = serializers.CharField()


class ExportSerializer(serializers.Serializer):
    """All data stylerec holds about the shopper."""

    shopper = ShopperSerializer()
    profile = ExportedProfileSerializer(allow_null=True)
    decisions = ExportedDecisionSerializer(many=True)
    events = ExportedEventSerializer(many=True)


class LoopSettingsSerializer(serializers.Serializer):
    """The loop's live settings; a change is checked as the dashboard's form checks it."""

    personalization_enabled = StrictBooleanField(required=False)
    policy = serializers.CharField(
        max_length=20, required=False, help_text="thompson, softmax, greedy or uniform."
    )
    uniform_share = serializers.FloatField(min_value=0, max_value=1, required=False)
    exploration_strength = serializers.FloatField(min_value=0, max_value=10, required=False)
    updated_at = serializers.DateTimeField(read_only=True, allow_null=True)
