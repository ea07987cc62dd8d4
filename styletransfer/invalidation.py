"""Distrusting what pages cached about products, whenever a product's image or rendition changes.

The read path (`shown`) keeps one entry per product and trusts it only while it carries
the product's current token; every change replaces the tokens of the products it touches
and the generation every process's memo is trusted under, in one write, now and again on
commit. Writes through `services` and `rendering` call this module; code that changes
Rendition or SourceImage rows with a bare `QuerySet.update()` must call it itself.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Iterable

from django.core.cache import caches
from django.db import transaction

from .conf import conf
from .models import SourceImage

logger = logging.getLogger(__name__)

PREFIX = "styletransfer:shown:1"  # bump when the entries change shape
GENERATION_KEY = f"{PREFIX}:generation"
_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def shown_cache():
    return caches[conf.CACHE_ALIAS]


def key_id(object_id: str) -> str:
    """The object id as it appears in keys: ids with spaces or odd characters are hashed
    (marked with "~", which plain ids never contain), so keys suit every cache backend."""
    if _SAFE_ID.fullmatch(object_id):
        return object_id
    return "~" + hashlib.sha256(object_id.encode()).hexdigest()


def entry_key(content_type_id: int, object_id: str) -> str:
    return f"{PREFIX}:{content_type_id}:{key_id(object_id)}"


def token_key(content_type_id: int, object_id: str) -> str:
    return f"{PREFIX}:token:{content_type_id}:{key_id(object_id)}"


def products_changed(pairs: Iterable[tuple[int, str]]) -> None:
    """Distrust the cached entries of these (content type id, object id) products, now and
    again when the current transaction commits (a page may have cached what it read before)."""
    pairs = {(content_type_id, str(object_id)) for content_type_id, object_id in pairs}
    if not pairs:
        return
    _new_tokens(pairs)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: _new_tokens(pairs))


def sources_changed(hashes: Iterable[str]) -> None:
    """Distrust the entries of every product whose primary image has one of these hashes."""
    hashes = {h for h in hashes if h}
    if not hashes:
        return
    hashes = sorted(hashes)
    pairs = set()
    for start in range(0, len(hashes), 1000):
        pairs.update(
            SourceImage.objects.filter(
                content_hash__in=hashes[start : start + 1000], position=0
            ).values_list("content_type_id", "object_id")
        )
    products_changed(pairs)


def _new_tokens(pairs: set) -> None:
    try:
        # One MSET: the tokens and the generation that processes' memos are trusted under.
        tokens = {token_key(*pair): uuid.uuid4().hex for pair in pairs}
        shown_cache().set_many({**tokens, GENERATION_KEY: uuid.uuid4().hex}, conf.CACHE_TIMEOUT)
    except Exception as exc:
        # Without a new token a page could keep showing what changed: drop the entries too.
        logger.error("Could not invalidate cached renditions of %d products: %s", len(pairs), exc)
        try:
            shown_cache().delete_many([GENERATION_KEY, *(entry_key(*pair) for pair in pairs)])
        except Exception:
            logger.exception("Could not drop cached renditions either")
