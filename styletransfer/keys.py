"""Pure functions that name things: content hashes, canonical params, rendition keys and files."""

import hashlib
import json
from collections.abc import Iterable
from typing import Any, BinaryIO

CHUNK = 1 << 20


def content_hash(chunks: Iterable[bytes]) -> str:
    """sha256 of a file's bytes: renditions follow the pixels, not the file name."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def file_hash(fh: BinaryIO) -> str:
    fh.seek(0)
    return content_hash(iter(lambda: fh.read(CHUNK), b""))


def params_hash(canonical_params: dict[str, Any], reference_hash: str) -> str:
    """Hash of everything besides the source that decides a rendition's pixels."""
    payload = json.dumps(
        {"params": canonical_params, "reference": reference_hash},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def rendition_name(
    *,
    directory: str,
    style_slug: str,
    source_hash: str,
    style_version: int,
    params_hash: str,
    extension: str,
) -> str:
    """Storage name derived from the rendition's key, so one key always maps to one file."""
    return (
        f"{directory}/{style_slug}/{source_hash[:2]}/"
        f"{source_hash[:32]}-v{style_version}-{params_hash[:12]}.{extension}"
    )


def variant_name(name: str, width: int) -> str:
    """The storage name of a rendition's file scaled down to `width` px."""
    stem, dot, extension = name.rpartition(".")
    return f"{stem}-w{width}{dot}{extension}"
