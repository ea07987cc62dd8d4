"""The read path pages use: each product's image and its ready renditions, from the cache.

One entry per product (its primary image's content hash and, per style key asked about,
the ready rendition or None), trusted only with the product's current token and kept in
the process while the cache's generation holds (see `invalidation`). A warm page reads
one key. What is missing (a product never seen, a rendition never requested) is made by
`services`, and the page shows the original photo meanwhile.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from django.contrib.contenttypes.models import ContentType

from . import services
from .conf import conf
from .invalidation import GENERATION_KEY, entry_key, shown_cache, token_key
from .models import Rendition, Style

logger = logging.getLogger(__name__)


class ReadyRendition(NamedTuple):
    file: str
    width: int | None
    height: int | None
    variants: tuple = ()  # ((width, height, file), ...) ascending, all narrower than `file`


@dataclass(frozen=True)
class ProductImages:
    """A product's primary image and its ready renditions in the styles asked about."""

    source_hash: str | None  # None: the product has no readable image
    ready: dict = field(default_factory=dict)  # style id -> ReadyRendition


NO_IMAGES = ProductImages(None)


def product_images(products: Sequence, styles: Sequence) -> dict:
    """ProductImages per product pk for `styles` (objects with pk, version, params_hash).

    Renditions never requested are requested now (the page shows the original meanwhile).
    """
    return ProductLookup(products).resolve(styles)


class ProductLookup:
    """product_images in two steps, so a caller can read `cache_keys` in a round trip of its
    own (on the `cache_alias` cache) and hand the values it read to `resolve`."""

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
                entry_key(content_type_id, object_id),
                token_key(content_type_id, object_id),
            )

    @property
    def cache_keys(self) -> list[str]:
        return [GENERATION_KEY] if self.products else []

    def resolve(self, styles: Sequence, prefetched: Mapping[str, Any] | None = None) -> dict:
        """ProductImages per product pk; `prefetched`: the values read for `cache_keys`."""
        global _memo
        if not self.products:
            return {}
        cache = shown_cache()
        if prefetched is None:
            prefetched = _read(cache, self.cache_keys)
        generation = _ensure_key(cache, GENERATION_KEY, prefetched.get(GENERATION_KEY))
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
            entry_name, token_name = self._keys[product.pk]
            entry, token = found.get(entry_name), found.get(token_name)
            if entry is not None and token is not None and entry[0] == token:
                images = _images(entry, style_keys)
                if images is not None:
                    shown[product.pk] = images
                    _remember(memo, entry_name, entry, generation)
                    continue
            stale.append((product, token))
        if stale:
            shown.update(_fill(stale, style_keys, self._keys, memo, generation))
        return shown


_memo: tuple[str | None, dict] = (None, {})
MEMO_SIZE = 20_000  # entries kept in each process; beyond it the memo starts again


def _remember(memo: dict, entry_name: str, entry: tuple, generation: str | None) -> None:
    if generation is None:
        return
    if len(memo) >= MEMO_SIZE:
        memo.clear()
    memo[entry_name] = entry


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
    cache = shown_cache()
    stale = [(product, _ensure_key(cache, keys[product.pk][1], token)) for product, token in stale]
    products = [product for product, _ in stale]
    sources = services.source_images_of(products)
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
            "variants",
        )
        for source_hash, style_id, version, params_hash, status, *ready in rows:
            if (style_id, version, params_hash) in wanted:
                # Plain tuples in the cache: they unpickle fastest.
                name, width, height, variants = ready
                statuses[source_hash][(style_id, version, params_hash)] = (
                    (name, width, height, tuple(tuple(v) for v in variants or ()))
                    if status == Rendition.Status.READY
                    else None
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
        shown_cache().set_many(entries, conf.CACHE_TIMEOUT)
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
    requested = []
    try:
        by_pk = Style.objects.in_bulk({key[0] for _, key in missing})
        for source, key in missing:
            style = by_pk.get(key[0])
            if style is not None and (style.version, style.params_hash) == key[1:]:
                services.rendition_request(source=source, style=style)
                requested.append((source, key))
    except Exception as exc:  # the page must render even if bookkeeping fails
        logger.warning("Could not request renditions: %s", exc)
    return requested
