"""Traffic: which loaded version answers a request, which one shadows it, and hot swaps.

A served model name has one or more *variants*, each a :class:`VariantSlot` holding the
model version loaded for its URI now. A request is routed, in this order:

1. by the version in its path (``/v2/models/churn/versions/<v>/infer``): ``<v>`` may be
   a version number, an alias (``champion``) or a variant name, among those served;
2. by the ``X-Conveyor-Variant`` header, which pins a caller to a variant;
3. else at random by the variants' weights (a seeded RNG makes tests reproducible).

A *shadow* variant gets a copy of a share of the requests; its answers are compared
with the one returned and logged, never returned, and never make the caller wait.

Hot swap: :meth:`VariantSlot.swap` replaces the slot's version in one assignment on the
event loop, so a request sees the old version or the new one, never neither; the old
version keeps serving the requests that hold it and is closed once they are done.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import numpy as np

from conveyor.serving.deployment import ModelConfig, uri_alias
from conveyor.serving.errors import ModelNotFound, ModelNotReady
from conveyor.serving.served import ServedModel

__all__ = ["ModelRoute", "VariantSlot", "rows_agreeing"]

#: How often a retiring version checks whether its last request is done.
_DRAIN_POLL_S = 0.005


class VariantSlot:
    """A variant's place in a route, and the model version loaded into it now."""

    def __init__(self, model: str, name: str, uri: str, weight: float = 0.0) -> None:
        self.model = model
        self.name = name
        self.uri = uri
        self.weight = weight
        parts = uri_alias(uri)
        #: The alias in a ``models:/name@alias`` URI: the hot-swap watcher follows it.
        self.alias = parts[2] if parts else None
        self.current: ServedModel | None = None

    @property
    def ready(self) -> bool:
        return self.current is not None

    def acquire(self) -> ServedModel:
        """The version to use for one request, held until :meth:`release`.

        Raises:
            ModelNotReady: nothing is loaded yet.
        """
        served = self.current
        if served is None:
            raise ModelNotReady(f"Model {self.model!r} (variant {self.name!r}) is still loading")
        served.in_flight += 1
        return served

    @staticmethod
    def release(served: ServedModel) -> None:
        served.in_flight -= 1

    def swap(self, new: ServedModel) -> ServedModel | None:
        """Serve ``new`` from now on; the old version (marked retired) is returned."""
        old, self.current = self.current, new
        if old is not None:
            old.retired = True
        return old

    @staticmethod
    async def retire(old: ServedModel) -> None:
        """Wait for the requests holding ``old`` to finish, then close its batcher."""
        while old.in_flight > 0:
            await asyncio.sleep(_DRAIN_POLL_S)
        if old.batcher is not None:
            await old.batcher.close()

    def matches(self, ref: str) -> bool:
        """Whether a path's ``versions/<ref>`` names this variant's version."""
        current = self.current
        return ref in (self.name, self.alias) or (current is not None and ref == current.version)


class ModelRoute:
    """The variants (and shadow) of one served model name, and how requests pick one."""

    def __init__(self, config: ModelConfig, rng: random.Random) -> None:
        self.name = config.name
        self.config = config
        self.variants = [VariantSlot(config.name, v.name, v.uri, v.weight) for v in config.served_variants()]
        shadow = config.shadow
        self.shadow = VariantSlot(config.name, shadow.name, shadow.uri) if shadow else None
        self.mirror = shadow.mirror if shadow else 0.0
        self._rng = rng
        self._weights = [v.weight for v in self.variants]

    def slots(self) -> Iterator[VariantSlot]:
        """Every slot, the shadow's included."""
        yield from self.variants
        if self.shadow is not None:
            yield self.shadow

    @property
    def ready(self) -> bool:
        return all(slot.ready for slot in self.slots())

    def pick(self, version: str | None = None, pinned: str | None = None) -> VariantSlot:
        """The variant that answers; see the module docstring for the order.

        Raises:
            ModelNotFound: the path's version or the pinned variant is not served.
        """
        if version is not None:
            return self._find(version, "version or alias")
        if pinned:
            return self._find(pinned, "variant")
        if len(self.variants) == 1:
            return self.variants[0]
        return self._rng.choices(self.variants, self._weights)[0]

    def mirror_now(self) -> bool:
        """Whether to copy this request to the shadow."""
        return self.shadow is not None and (self.mirror >= 1.0 or self._rng.random() < self.mirror)

    def describe(self) -> str:
        """``champion=3, challenger=4``: what is served, for error messages."""
        return ", ".join(
            f"{slot.name}={slot.current.version if slot.current else '(loading)'}" for slot in self.variants
        )

    def _find(self, ref: str, what: str) -> VariantSlot:
        for slot in self.variants:
            if slot.matches(ref):
                return slot
        raise ModelNotFound(
            f"Model {self.name!r} serves no {what} {ref!r}; served variants: {self.describe()}"
        )


def rows_agreeing(answer: np.ndarray, shadow: np.ndarray, *, rtol: float = 1e-6) -> int | None:
    """How many rows the shadow predicted as the answer did (None: not comparable).

    Labels must be equal; numbers must agree to ``rtol`` (a retrained regressor never
    reproduces the last digit).
    """
    if answer.shape != shadow.shape:
        return None
    if answer.dtype.kind in "fc" or shadow.dtype.kind in "fc":
        try:
            same = np.isclose(answer, shadow, rtol=rtol, atol=1e-12, equal_nan=True)
        except TypeError:
            return None
    else:
        same = answer == shadow
    if same.ndim > 1:
        same = same.reshape(len(same), -1).all(axis=1)
    return int(np.count_nonzero(same))
