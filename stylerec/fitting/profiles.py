"""Writing a fit's profiles: in batches, through COPY on PostgreSQL, and into the cache."""

from __future__ import annotations

from itertools import islice

from django.db import connection, transaction

from ..models import Shopper, ShopperProfile
from ..serving.state import preferences_cached

_BATCH = 5_000


def profiles_save(*, fit, version: str, cache_only: set[int] | None = None) -> None:
    """Every shopper's profile of `fit` under `version`, written batch by batch, so memory
    stays flat however many shoppers; a shopper forgotten since the logs were read is left out.
    Cached too, for `cache_only` shoppers where given: the others' pages read their profile
    once on their next visit (caching 100k profiles cost more than the rest of the fit)."""
    decisions = dict(zip(fit.shoppers.tolist(), fit.decisions.tolist(), strict=True))
    items = fit.items()
    while batch := list(islice(items, _BATCH)):
        encoded = {shopper_id: preference.to_bytes() for shopper_id, preference in batch}
        if connection.vendor == "postgresql":
            _copy_profiles(encoded, decisions, version)
        else:
            _bulk_profiles(encoded, decisions, version)
        if cache_only is not None:
            encoded = {pk: data for pk, data in encoded.items() if pk in cache_only}
        preferences_cached(version, encoded)


def _bulk_profiles(encoded: dict, decisions: dict, version: str) -> None:
    existing = set(Shopper.objects.filter(pk__in=list(encoded)).values_list("pk", flat=True))
    ShopperProfile.objects.bulk_create(
        [
            ShopperProfile(
                shopper_id=shopper_id,
                model_version=version,
                preference=data,
                decisions=decisions[shopper_id],
            )
            for shopper_id, data in encoded.items()
            if shopper_id in existing
        ],
        update_conflicts=True,
        unique_fields=["shopper"],
        update_fields=["model_version", "preference", "decisions", "updated_at"],
    )


def _copy_profiles(encoded: dict, decisions: dict, version: str) -> None:
    """COPY into a temporary table, then one upsert joined to the shoppers that still exist:
    Django's bulk_create spends longer composing SQL for 100k rows than the fit takes."""
    profile, shopper = ShopperProfile._meta.db_table, Shopper._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMPORARY TABLE IF NOT EXISTS stylerec_profile_load "
            "(shopper_id bigint, preference bytea, decisions float8)"
        )
        cursor.execute("TRUNCATE stylerec_profile_load")
        with cursor.cursor.copy(
            "COPY stylerec_profile_load (shopper_id, preference, decisions) FROM STDIN"
        ) as copy:
            for shopper_id, data in encoded.items():
                copy.write_row((shopper_id, data, decisions[shopper_id]))
        cursor.execute(
            f"""
            INSERT INTO {profile} (shopper_id, model_version, preference, decisions, updated_at)
            SELECT l.shopper_id, %s, l.preference, l.decisions, now()
            FROM stylerec_profile_load l JOIN {shopper} s ON s.id = l.shopper_id
            ON CONFLICT (shopper_id) DO UPDATE SET
                model_version = EXCLUDED.model_version, preference = EXCLUDED.preference,
                decisions = EXCLUDED.decisions, updated_at = EXCLUDED.updated_at
            """,
            [version],
        )
