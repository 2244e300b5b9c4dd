"""The watcher: loads every variant at start, then follows registry aliases (hot swap).

Every ``poll_interval_s`` it asks the registry where each alias in a served
``models:/name@alias`` URI points. When ``champion`` has moved (say from version 3 to
4), it loads and warms version 4 in a worker thread while version 3 keeps serving,
switches the variant over in one step, and lets version 3 finish the requests it holds
before closing it (:mod:`conveyor.serving.traffic`). No request waits for the load
and none is dropped.

A URI that cannot be loaded (a typo, a registry that is down) is logged and tried
again at the next poll; a version that was serving keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from conveyor.errors import ConveyorError

if TYPE_CHECKING:
    from conveyor.serving.runtime import ServingRuntime
    from conveyor.serving.traffic import VariantSlot

__all__ = ["Watcher"]

log = logging.getLogger("conveyor.serving")


class Watcher:
    """Loads and hot-swaps the runtime's versions; see the module docstring."""

    def __init__(self, runtime: ServingRuntime, interval_s: float) -> None:
        self.runtime = runtime
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        #: Set after each pass over every slot (tests wait on it).
        self.passes = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def check_now(self) -> None:
        """One pass over every slot: load what is missing, swap what has moved."""
        slots = [slot for route in self.runtime.routes.values() for slot in route.slots()]
        await asyncio.gather(*(self._refresh(slot) for slot in slots))
        self.passes += 1

    async def _run(self) -> None:
        while True:
            await self.check_now()
            await asyncio.sleep(self.interval_s)

    async def _refresh(self, slot: VariantSlot) -> None:
        current = slot.current
        if current is not None and slot.alias is None:
            return  # a pinned version or a folder never changes
        try:
            resolved = await asyncio.to_thread(self.runtime.source.resolve, slot.uri)
            if current is not None and current.version == resolved.version:
                return
            served = await asyncio.to_thread(self.runtime.build, slot, resolved)
        except ConveyorError as exc:
            log.error("Cannot load %s for %s variant %s: %s", slot.uri, slot.model, slot.name, exc.message)
            return
        except Exception:
            log.exception("Cannot load %s for %s variant %s", slot.uri, slot.model, slot.name)
            return
        self.runtime.install(slot, served)
