"""Onboarding adapters in the shop's storage, and their local copies on each render worker.

The storage copy (ADAPTERS_DIR/<sha256>.pt) is the one every worker shares; the engine reads
a local, content-addressed copy (engines.onboarding.AdapterStore), fetched on first use and
checked against its sha256 both times.
"""

import logging

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

from .conf import conf
from .engines.errors import WeightsError
from .models import Style

logger = logging.getLogger(__name__)


def storage_name(sha256: str) -> str:
    return f"{conf.ADAPTERS_DIR}/{sha256}.pt"


def adapter_publish(*, data: bytes, sha256: str) -> str:
    """Write an adapter's bytes to the default storage under its checksum; returns the name."""
    name = storage_name(sha256)
    if default_storage.exists(name):
        default_storage.delete(name)  # an earlier, possibly torn, copy under the same name
    saved = default_storage.save(name, ContentFile(data))
    if saved != name:
        raise RuntimeError(f"storage saved {name} as {saved}")
    return name


def adapter_ensure_local(engine, sha256: str) -> None:
    """Make the engine's local adapter store hold a verified copy of `sha256`.

    A local copy that fails its checksum is dropped and fetched again; a storage copy that
    fails it raises WeightsError (the caller fails the render and asks for a new onboarding).
    """
    if not sha256:
        return
    from .engines.onboarding import adapter_from_bytes  # torch: render workers only

    store = engine.adapters
    if store.has(sha256):
        try:
            adapter_from_bytes(store.path_of(sha256).read_bytes(), sha256)
            return
        except WeightsError as exc:
            logger.warning("Local adapter copy refused, fetching it again: %s", exc)
            store.forget(sha256)
    try:
        with default_storage.open(storage_name(sha256), "rb") as stream:
            data = stream.read()
    except OSError:  # FileNotFoundError among them
        _onboard_again(sha256)
        raise WeightsError(
            f"style adapter {sha256[:12]}… is missing from storage; the style is onboarded again"
        ) from None
    try:
        store.add_bytes(sha256, data)
    except WeightsError:
        _onboard_again(sha256)
        raise WeightsError(
            f"style adapter {sha256[:12]}… in storage is altered and was refused; the style is "
            "onboarded again"
        ) from None


def _onboard_again(sha256: str) -> None:
    """Forget the onboarding of the styles using this adapter: the sweep
    (services.styles_catch_up) requests a new one, whose landing supersedes the renditions
    that failed meanwhile."""
    Style.objects.filter(adapter_sha256=sha256).update(onboarding_reference="")
