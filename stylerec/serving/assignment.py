"""Stable assignments: which epoch a shopper's draws belong to, the draw itself, and the control
group, all pure functions of the shopper, the product, the time and a secret salt.

A shopper keeps one decision per product and epoch. The epoch changes with the model's version
and every REDRAW_INTERVAL seconds (the same instants for every shopper, so a shopper who signs
in keeps the images the anonymous session was shown: its decisions move to the account). The
draw is the uniform `assignment_uniform(...)` inverted through the decision's logged
probabilities (`drawn_arm`), so whoever holds the salt can replay a logged decision, and the
logged propensity is exactly the one the draw used. Repeated views of the product within the
epoch reuse the decision: their impressions and clicks attach to it, and its reward is what the
shopper did with that image over the assignment: one draw, one outcome, which keeps
inverse-propensity estimates unbiased (tests/stylerec/test_assignment.py).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import math
import time
from collections.abc import Sequence

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from ..conf import conf

CONTROL = "control"  # the policy logged for the control group's decisions
_SCALE = float(2**64)


@functools.cache
def _salt() -> bytes:
    configured = conf.ASSIGNMENT_SALT
    if configured:
        return configured.encode()
    # Derived, not SECRET_KEY itself: the hash inputs are public (shopper and product ids).
    return hmac.new(settings.SECRET_KEY.encode(), b"stylerec.assignment", "sha256").digest()


@receiver(setting_changed)
def _salt_changed(*, setting, **kwargs) -> None:
    if setting in {"SECRET_KEY", "STYLEREC"}:
        _salt.cache_clear()


def _uniform(*parts: object) -> float:
    """A uniform in [0, 1) from the salted hash of `parts`."""
    message = "\x1f".join(str(part) for part in parts).encode()
    digest = hashlib.blake2b(message, key=_salt()[:64], digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


def assignment_epoch(model_version: str, now: float | None = None) -> str:
    """The epoch of the current draws: the model's version and the re-draw period."""
    interval = conf.REDRAW_INTERVAL
    if not interval:
        return f"{model_version}.0"
    now = time.time() if now is None else now
    return f"{model_version}.{math.floor(now / interval)}"


def assignment_uniform(shopper_id: int, product_id: str, epoch: str) -> float:
    """The uniform a shopper's draw for a product in an epoch inverts through its policy."""
    return _uniform("draw", shopper_id, product_id, epoch)


def drawn_arm(probabilities: Sequence[float], uniform: float) -> int:
    """The index whose cumulative probability first exceeds `uniform` (scaled by the total, so
    rounding never draws past the end); never an index of probability 0."""
    threshold = uniform * math.fsum(probabilities)
    cumulative = 0.0
    last = 0
    for index, probability in enumerate(probabilities):
        if probability <= 0:
            continue
        cumulative += probability
        last = index
        if cumulative > threshold:
            return index
    return last


def in_control_group(shopper_id: int) -> bool:
    """Whether the shopper is one of the CONTROL_SHARE who always see the original photos."""
    share = conf.CONTROL_SHARE
    return bool(share) and _uniform("control", shopper_id) < share
