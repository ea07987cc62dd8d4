"""What a page needs to show products in styles, cached per product so a warm page runs no query.

One entry per product: its primary image's content hash and, for each style key
(style id, version, params hash) the page asked about, the ready rendition (file and
size) or None when the rendition exists but is not ready. An entry is trusted only when
it carries the product's current *token*, a random value in the cache that every change
to the product's image or to one of its renditions replaces (`products_changed`,
`sources_changed`). The reader reads the token in the same round trip as the entry (a
product without one gets one) before it reads the database, so an entry filled from a
database read that a change overtook carries the old token and is never trusted, and an
evicted token distrusts its entry: no page serves a rendition that was deleted, that is
not ready, or that belongs to a photo the product no longer has.

Each process also keeps the entries it read, trusted while the cache's *generation* key
is the one it read them under; every change replaces the generation in the same write
(one MSET) as the tokens, so a warm page reads one small key, not two per product.

A style's new version or new render parameters are new style keys, which no entry knows
yet: those products are read again. Writes through `services` (and the admin) keep the
cache in step; code that changes Rendition or SourceImage rows with a bare
`QuerySet.update()` must call `sources_changed` / `products_changed` itself.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from django.contrib.contenttypes.models import ContentType
from django.core.cache import caches
from django.db import transaction

from .conf import conf
from .models import Rendition, SourceImage, Style

logger = logging.getLogger(__name__)

PREFIX = "styletransfer:shown:1"  # bump when the entries change shape
GENERATION_KEY = f"{PREFIX}:generation"


class ReadyRendition(NamedTuple):
    file: str
    width: int | None
    height: int | None


@dataclass(frozen=True)
class ProductImages:
    """A product's primary image and its ready renditions in the styles asked about."""

    source_hash: str | None  # None: the product has no readable image
    ready: dict = field(default_factory=dict)  # style id -> ReadyRendition


def _cache():
    return caches[conf.CACHE_ALIAS]


_SAFE_ID = re.compile(r"[A-Za-z0-9_.-]{1,100}")


def _key_id(object_id: str) -> str:
    """The object id as it appears in keys: ids with spaces or odd characters are hashed
    (marked with "~", which plain ids never contain), so keys suit every cache backend."""
    if _SAFE_ID.fullmatch(object_id):
        return object_id
    return "~" + hashlib.sha256(object_id.encode()).hexdigest()


def _entry_key(content_type_id: int, object_id: str) -> str:
    return f"{PREFIX}:{content_type_id}:{_key_id(object_id)}"


def _token_key(content_type_id: int, object_id: str) -> str:
    return f"{PREFIX}:token:{content_type_id}:{_key_id(object_id)}"


def product_images(products: Sequence, styles: Sequence) -> dict:
    """ProductImages per product pk for `styles` (objects with pk, version, params_hash).

    Renditions never requested are requested now (the page shows the original meanwhile).
    """
    return ProductLookup(products).resolve(styles)


class ProductLookup:
    """product_images in two steps, so a caller can read `cache_keys` in a round trip of its
    own (on the `cache_alias` cache) and hand what it found to `resolve`.

    Entries also stay in this process, trusted while the cache's generation (replaced with
    the tokens by every change) is the one they were read under: a warm page then reads one
    small key instead of two per product.
    """

    def __init__(self, products: Sequence):
        self.products = list(products)
        self.cache_alias = conf.CACHE_ALIAS
        self._keys = {}
        if not self.products:
            return
        content_type_id = ContentType.objects.get_for_model(self.products[0]).pk
        for product in self.products:
            object_id = str(product.pk)
            self._keys[product.pk] = (
                _entry_key(content_type_id, object_id),
                _token_key(content_type_id, object_id),
            )

    @property
    def cache_keys(self) -> list[str]:
        return [GENERATION_KEY] if self.products else []

    def resolve(self, styles: Sequence, found: dict | None = None) -> dict:
        global _memo
        if not self.products:
            return {}
        cache = _cache()
        if found is None:
            found = _read(cache, self.cache_keys)
        generation = _ensure_key(cache, GENERATION_KEY, found.get(GENERATION_KEY))
        memo_generation, memo = _memo
        if generation is None or generation != memo_generation:
            memo = {}
            if generation is not None:
                _memo = (generation, memo)
        style_keys = [(s.pk, s.version, s.params_hash) for s in styles]
        shown, unknown = {}, []
        for product in self.products:
            images = _images(memo.get(self._keys[product.pk][0]), style_keys)
            if images is None:
                unknown.append(product)
            else:
                shown[product.pk] = images
        if not unknown:
            return shown
        found = _read(cache, [key for p in unknown for key in self._keys[p.pk]])
        stale = []
        for product in unknown:
            entry_key, token_key = self._keys[product.pk]
            entry, token = found.get(entry_key), found.get(token_key)
            if entry is not None and token is not None and entry[0] == token:
                images = _images(entry, style_keys)
                if images is not None:
                    shown[product.pk] = images
                    _remember(memo, entry_key, entry, generation)
                    continue
            stale.append((product, token))
        if stale:
            shown.update(_fill(stale, style_keys, self._keys, memo, generation))
        return shown


_memo: tuple[str | None, dict] = (None, {})
MEMO_SIZE = 20_000  # entries kept in each process; beyond it the memo starts again


def _remember(memo: dict, entry_key: str, entry: tuple, generation: str | None) -> None:
    if generation is None:
        return
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[entry_key] = entry


def _images(entry: tuple | None, style_keys: list) -> ProductImages | None:
    """What the entry says about these style keys; None when it does not know them all."""
    if entry is None:
        return None
    _, source_hash, statuses = entry
    if source_hash is None:
        return ProductImages(None)
    ready = {}
    for key in style_keys:
        if key not in statuses:
            return None
        if statuses[key] is not None:
            ready[key[0]] = ReadyRendition(*statuses[key])
    return ProductImages(source_hash, ready)


def _read(cache, keys: list) -> dict:
    try:
        return cache.get_many(keys)
    except Exception as exc:  # a cache outage slows pages down; it must not break them
        logger.warning("Rendition cache unreadable: %s", exc)
        return {}


def _fill(stale: list, style_keys: list, keys: dict, memo: dict, generation) -> dict:
    """Read the stale products from the database, request what was never requested, and
    cache them with the token read before the database was."""
    from .selectors import source_images_for

    cache = _cache()
    stale = [(product, _ensure_key(cache, keys[product.pk][1], token)) for product, token in stale]
    products = [product for product, _ in stale]
    sources = source_images_for(products)
    statuses: dict[str, dict] = {source.content_hash: {} for source in sources.values()}
    if statuses and style_keys:
        wanted = set(style_keys)
        rows = Rendition.objects.filter(
            source_hash__in=list(statuses),
            style__in=[key[0] for key in style_keys],
            style_version__in={key[1] for key in style_keys},
        ).values_list(
            "source_hash",
            "style_id",
            "style_version",
            "params_hash",
            "status",
            "file",
            "width",
            "height",
        )
        for source_hash, style_id, version, params_hash, status, name, width, height in rows:
            if (style_id, version, params_hash) in wanted:
                # Plain tuples in the cache: they unpickle fastest.
                statuses[source_hash][(style_id, version, params_hash)] = (
                    (name, width, height) if status == Rendition.Status.READY else None
                )
    missing = [
        (source, key)
        for source in {s.content_hash: s for s in sources.values()}.values()
        for key in style_keys
        if key not in statuses[source.content_hash]
    ]
    if missing:
        for source, key in _request(missing):
            statuses[source.content_hash][key] = None
    shown, entries = {}, {}
    for product, token in stale:
        source = sources.get(product.pk)
        source_hash = source.content_hash if source is not None else None
        known = statuses.get(source_hash, {})
        if token is not None:
            entries[keys[product.pk][0]] = (token, source_hash, known)
            _remember(memo, keys[product.pk][0], entries[keys[product.pk][0]], generation)
        shown[product.pk] = ProductImages(
            source_hash,
            {
                key[0]: ReadyRendition(*known[key])
                for key in style_keys
                if known.get(key) is not None
            },
        )
    try:
        _cache().set_many(entries, conf.CACHE_TIMEOUT)
    except Exception as exc:
        logger.warning("Rendition cache unwritable: %s", exc)
    return shown


def _ensure_key(cache, key: str, value: str | None) -> str | None:
    """The token (or generation) at `key`, made now when there is none (never changed, or
    evicted): entries are only ever trusted with one that is still in the cache. None: the
    cache is not answering, trust and keep nothing."""
    if value is not None:
        return value
    try:
        fresh = uuid.uuid4().hex
        if cache.add(key, fresh, conf.CACHE_TIMEOUT):
            return fresh
        return cache.get(key)
    except Exception:
        return None


def _request(missing: list) -> list:
    """Request renditions never asked for (one style query for all); returns those requested."""
    from .services import rendition_request

    requested = []
    try:
        by_pk = Style.objects.in_bulk({key[0] for _, key in missing})
        for source, key in missing:
            style = by_pk.get(key[0])
            if style is not None and (style.version, style.params_hash) == key[1:]:
                rendition_request(source=source, style=style)
                requested.append((source, key))
    except Exception as exc:  # the page must render even if bookkeeping fails
        logger.warning("Could not request renditions: %s", exc)
    return requested


# --- Invalidation ------------------------------------------------------------------------------


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
        tokens = {_token_key(*pair): uuid.uuid4().hex for pair in pairs}
        _cache().set_many({**tokens, GENERATION_KEY: uuid.uuid4().hex}, conf.CACHE_TIMEOUT)
    except Exception as exc:
        # Without a new token a page could keep showing what changed: drop the entries too.
        logger.error("Could not invalidate cached renditions of %d products: %s", len(pairs), exc)
        try:
            _cache().delete_many([GENERATION_KEY, *(_entry_key(*pair) for pair in pairs)])
        except Exception:
            logger.exception("Could not drop cached renditions either")
