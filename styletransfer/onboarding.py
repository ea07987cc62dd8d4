"""Worker-side style onboarding: tune the feedforward decoder to a style's reference image,
publish the adapter, and measure both engines on sample products (tasks.onboard_style)."""

import dataclasses
import hashlib
import logging
from typing import Any

from . import adapters, rendering
from .conf import conf
from .models import OnboardingState, Style

logger = logging.getLogger(__name__)

TUNING_PHOTOS = 12  # catalogue photos tuned on, beside the engine's shipped samples


@dataclasses.dataclass(frozen=True)
class Onboarded:
    """What one onboarding produced, for services.style_onboarding_land."""

    style_id: int
    reference_hash: str
    adapter_sha256: str
    quality: dict[str, Any]


def style_onboard(*, style_id: int, device: str | None = None) -> Onboarded | None:
    """Tune, publish and measure; None when there is nothing (left) to do for this style.

    The claim (pending -> tuning) holds only for the reference image it was requested for: a
    style edited meanwhile has a new request of its own, and this result is not used.
    """
    style = Style.objects.filter(pk=style_id).first()
    if style is None or not style.reference_image or not style.reference_hash:
        return None
    reference = style.reference_hash
    claimed = (
        Style.objects.filter(pk=style_id, reference_hash=reference, onboarding_reference=reference)
        .exclude(onboarding_state=OnboardingState.READY)
        .update(onboarding_state=OnboardingState.TUNING)
    )
    if not claimed:
        return None
    from .engines import onboarding as tuning  # torch: render workers only
    from .engines.engine import get_engine

    painting = rendering._open_stored(style.reference_image.name)
    catalogue = _catalogue_photos(TUNING_PHOTOS)
    engine = get_engine("feedforward", device or conf.DEVICE)
    config = tuning.OnboardConfig(
        steps=conf.ONBOARDING_STEPS, minutes=conf.ONBOARDING_MINUTES, device=engine.device
    )
    contents = [*catalogue, *tuning.content_images()]
    adapter = tuning.onboard(painting, reference=reference, contents=contents, config=config)
    data = tuning.adapter_bytes(adapter)
    sha256 = hashlib.sha256(data).hexdigest()
    adapters.adapter_publish(data=data, sha256=sha256)
    engine.adapters.add_bytes(sha256, data)
    samples = catalogue[: conf.QUALITY_SAMPLES] or tuning.content_images()[: conf.QUALITY_SAMPLES]
    params = dataclasses.replace(style.render_params(), size=conf.QUALITY_SIZE, adapter=sha256)
    quality = tuning.quality_figures(
        painting, samples, params=params, adapter=sha256, device=engine.device
    )
    quality |= {"steps": adapter.meta["steps"], "seconds": adapter.meta["seconds"]}
    logger.info(
        "Style %s onboarded in %s steps (%.0f s): feedforward/optimize style loss %.2f (was %.2f)",
        style_id,
        adapter.meta["steps"],
        adapter.meta["seconds"],
        quality["ratio"],
        quality["base_ratio"],
    )
    return Onboarded(style_id, reference, sha256, quality)


def _catalogue_photos(count: int) -> list:
    """The primary photos of the first `count` products that can be read."""
    photos = []
    for product in conf.live_products().order_by("pk")[:count]:
        images = conf.product_images(product)
        if not images:
            continue
        try:
            photos.append(rendering._open_stored(images[0].name))
        except Exception as exc:  # one unreadable photo is no reason to stop onboarding
            logger.warning("Onboarding skips product %s's photo: %s", product.pk, exc)
    return photos
