"""Serializers of the stylerec API: the events contract and what shoppers see."""

from datetime import timedelta

from django.utils import timezone
from rest_framework import serializers

from ..conf import conf
from ..models import Event

FUTURE_SLACK = timedelta(minutes=5)


class EventSerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=Event.Kind.choices)
    decision = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    product = serializers.CharField(max_length=64)
    ts = serializers.DateTimeField(required=False, allow_null=True)

    def validate_ts(self, value):
        if value is None:
            return value
        now = timezone.now()
        if value > now + FUTURE_SLACK:
            raise serializers.ValidationError("Timestamp is in the future.")
        if value < now - timedelta(days=conf.MAX_EVENT_AGE_DAYS):
            raise serializers.ValidationError(
                f"Timestamp is older than {conf.MAX_EVENT_AGE_DAYS} days."
            )
        return value

    def validate(self, attrs):
        decisions = self.context.get("decisions", {})
        decision_id = attrs.get("decision")
        if decision_id is not None:
            decision = decisions.get(decision_id)
            if decision is None:
                raise serializers.ValidationError({"decision": ["Unknown decision."]})
            if decision.product_id != attrs["product"]:
                raise serializers.ValidationError(
                    {"product": ["This decision was made for another product."]}
                )
        elif attrs["type"] in (Event.Kind.IMPRESSION, Event.Kind.CLICK):
            raise serializers.ValidationError(
                {"decision": ["Impressions and clicks need the decision of the image shown."]}
            )
        return attrs


class EventBatchSerializer(serializers.Serializer):
    events = EventSerializer(many=True, allow_empty=False)

    def validate_events(self, value):
        if len(value) > conf.MAX_EVENTS_PER_BATCH:
            raise serializers.ValidationError(
                f"At most {conf.MAX_EVENTS_PER_BATCH} events per batch."
            )
        return value

    def to_internal_value(self, data):
        # Refuse oversized batches before validating thousands of items.
        events = data.get("events") if isinstance(data, dict) else None
        if isinstance(events, list) and len(events) > conf.MAX_EVENTS_PER_BATCH:
            raise serializers.ValidationError(
                {"events": [f"At most {conf.MAX_EVENTS_PER_BATCH} events per batch."]}
            )
        return super().to_internal_value(data)


class IngestResultSerializer(serializers.Serializer):
    stored = serializers.IntegerField()
    duplicates = serializers.IntegerField()
