"""The serving runtime: routes, loaded versions, batchers, shadows and the prediction log.

Protocol handlers call :meth:`ServingRuntime.infer` with a parsed payload; it routes
the request to a variant, validates it against that version's signature, queues it
for its batch, and on the way out writes the prediction log and mirrors the request
to the shadow. It knows nothing about HTTP, so both protocols behave the same.

Lifecycle: :meth:`start` on the event loop (the app's lifespan) starts the hot-swap
watcher, whose first pass loads and warms every version; the server reports ready once
every slot holds one. :meth:`stop` lets queued requests finish, closes every batcher
and flushes the prediction log.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from conveyor.serving.batching import Batcher
from conveyor.serving.deadlines import Deadlines
from conveyor.serving.deployment import Deployment
from conveyor.serving.errors import ModelNotFound, PredictFailed, RequestRejected
from conveyor.serving.hotswap import Watcher
from conveyor.serving.loading import ModelSource, Resolved
from conveyor.serving.metrics import ServingMetrics
from conveyor.serving.served import PREDICT, PROBA, Outputs, ServedModel, prepare
from conveyor.serving.traffic import ModelRoute, VariantSlot, rows_agreeing
from conveyor.serving.validation import Columns, InputSpec, RawInputs

if TYPE_CHECKING:
    from conveyor.config import Settings

__all__ = ["InferResult", "ServingRuntime"]

log = logging.getLogger("conveyor.serving")

#: Most shadow requests in flight at once; beyond it copies are skipped, so a slow
#: shadow can never pile up memory.
MAX_SHADOW_TASKS = 256


@dataclass(frozen=True, slots=True)
class InferResult:
    """What answered a request, and its outputs (only the request's own rows)."""

    served: ServedModel
    outputs: Outputs
    rows: int


class ServingRuntime:
    """Everything one serving app runs; see the module docstring.

    Args:
        deployment: What to serve.
        settings: Where the registry and the artifact store are.
        source: Loads models (default: from ``settings``); tests pass their own.
    """

    def __init__(
        self, deployment: Deployment, settings: Settings, *, source: ModelSource | None = None
    ) -> None:
        self.deployment = deployment
        self.settings = settings
        self.source = source or ModelSource(settings)
        self.metrics = ServingMetrics()
        rng = random.Random(deployment.seed)
        self.routes = {m.name: ModelRoute(m, rng) for m in deployment.models}
        self.executor = ThreadPoolExecutor(deployment.predict_threads, thread_name_prefix="conveyor-predict")
        self.prediction_log: Any = None
        self.watcher = Watcher(self, deployment.poll_interval_s)
        #: Every request's timeout, on one timer (see :mod:`conveyor.serving.deadlines`).
        self.deadlines = Deadlines()
        self._background: set[asyncio.Task[Any]] = set()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the prediction log and start loading; returns before the models are ready."""
        self.prediction_log = self._open_prediction_log()
        self.watcher.start()

    async def stop(self) -> None:
        """Stop watching, let queued requests and shadows finish, flush the prediction log."""
        await self.watcher.stop()
        if self._background:
            await asyncio.wait(self._background, timeout=10)
        for route in self.routes.values():
            for slot in route.slots():
                if slot.current is not None:
                    slot.current.retired = True
                    await VariantSlot.retire(slot.current)
        if self.prediction_log is not None:
            await asyncio.to_thread(self.prediction_log.close)
        self.executor.shutdown(wait=True)
        self.source.close()

    @property
    def ready(self) -> bool:
        """Every variant and shadow of every model loaded and warmed up."""
        return all(route.ready for route in self.routes.values())

    def route(self, name: str) -> ModelRoute:
        """The served model called ``name``.

        Raises:
            ModelNotFound: no such model is served (the message lists those that are).
        """
        found = self.routes.get(name)
        if found is None:
            raise ModelNotFound(f"No model {name!r} is served here; served: {sorted(self.routes)}")
        return found

    # -- loading (called by the watcher) ---------------------------------------------------

    def build(self, slot: VariantSlot, resolved: Resolved) -> ServedModel:
        """Load and warm up the version ``resolved`` names for ``slot``; blocking."""
        config = self.routes[slot.model].config
        started = time.perf_counter()
        loaded, version = self.source.load(
            resolved, allow_pickle=config.allow_pickle, trusted_types=config.trusted_types
        )
        spec = InputSpec.from_signature(
            loaded.signature,
            flavor=loaded.manifest.flavor,
            allow_nan=config.allow_nan,
            unknown=config.unknown_columns,
        )
        served = ServedModel(slot.model, slot.name, version, resolved.alias, loaded, spec)
        prepare(served)
        served.load_seconds = time.perf_counter() - started
        return served

    def install(self, slot: VariantSlot, served: ServedModel) -> None:
        """Give ``served`` its batcher and make it the slot's version; on the event loop."""
        config = self.routes[slot.model].config.batching
        labels = labels_of(served)
        served.batcher = Batcher(
            served.predict,
            self.executor,
            merge=config.enabled if config.enabled is not None else served.vectorizes,
            max_batch_size=config.max_batch_size,
            max_wait_s=config.max_wait_ms / 1000,
            observe=self.metrics.batch_observer(labels),
            cost=served.predict_seconds,
            inline_max_s=config.inline_max_ms / 1000,
        )
        served.batcher.start()
        self.metrics.model_load.labels(*labels).set(served.load_seconds)
        self.metrics.model_ready.labels(*labels).set(1)
        old = slot.swap(served)
        if old is not None:
            self.metrics.model_ready.labels(*labels_of(old)).set(0)
            self.spawn(VariantSlot.retire(old))
        log.info(
            "Serving %s variant %s: version %s (%s, %.2f s to load)",
            slot.model,
            slot.name,
            served.version,
            served.flavor,
            served.load_seconds,
        )

    # -- requests --------------------------------------------------------------------------

    async def infer(
        self,
        route: ModelRoute,
        parse: Callable[[InputSpec], RawInputs],
        *,
        request_id: str,
        started: float,
        version: str | None = None,
        pinned: str | None = None,
        proba: bool = False,
        on_served: Callable[[ServedModel], None] | None = None,
    ) -> InferResult:
        """Route, validate, predict; then log and mirror. ``parse`` reads the payload by a spec.

        Raises:
            ModelNotFound: the path's version or the pinned variant is not served.
            ModelNotReady: the variant is still loading.
            RequestRejected: the payload does not fit the version's signature.
            PredictFailed: the model raised (logged with its traceback).
        """
        slot = route.pick(version, pinned)
        served = slot.acquire()
        try:
            if on_served is not None:
                on_served(served)
            columns = self._validate(served, parse)
            rows = len(next(iter(columns.values())))
            logs = self._logs(route, served)
            outputs = await self._predict(served, columns, rows, proba or logs, request_id)
        finally:
            slot.release(served)
        if logs:
            self._log(served, columns, outputs, request_id, started)
        if route.mirror_now() and len(self._background) < MAX_SHADOW_TASKS:
            self.spawn(self._shadow(route, parse, outputs, request_id, started))
        return InferResult(served, outputs, rows)

    def _validate(self, served: ServedModel, parse: Callable[[InputSpec], RawInputs]) -> Columns:
        try:
            return served.spec.validate(parse(served.spec))
        except RequestRejected as rejected:
            self.metrics.rejected(labels_of(served), rejected.problems)
            raise

    async def _predict(
        self, served: ServedModel, columns: Columns, rows: int, proba: bool, request_id: str
    ) -> Outputs:
        assert served.batcher is not None
        try:
            return await served.batcher.submit(columns, rows, proba=proba)
        except Exception as exc:
            log.error(
                "predict failed: model %s version %s variant %s, request %s",
                served.model,
                served.version,
                served.variant,
                request_id,
                exc_info=exc,
            )
            raise PredictFailed(
                f"The model failed to predict; the error is in the server log under request id {request_id}"
            ) from None

    async def _shadow(
        self,
        route: ModelRoute,
        parse: Callable[[InputSpec], RawInputs],
        answer: Outputs,
        request_id: str,
        started: float,
    ) -> None:
        """Run the shadow on the same payload; count agreement, log; never raise."""
        assert route.shadow is not None
        slot = route.shadow
        if slot.current is None:
            return
        served = slot.acquire()
        try:
            columns = self._validate(served, parse)
            rows = len(next(iter(columns.values())))
            logs = self._logs(route, served)
            outputs = await self._predict(served, columns, rows, logs, request_id)
        except Exception as exc:  # the shadow's problems are logged, never the caller's
            log.warning("Shadow %s of %s failed on request %s: %s", slot.name, route.name, request_id, exc)
            return
        finally:
            slot.release(served)
        self._count_agreement(served, answer, outputs, rows)
        if logs:
            self._log(served, columns, outputs, request_id, started)

    def _count_agreement(self, shadow: ServedModel, answer: Outputs, outputs: Outputs, rows: int) -> None:
        name = PREDICT if PREDICT in answer else next(iter(answer))
        if name not in outputs:
            return
        agreeing = rows_agreeing(answer[name], outputs[name])
        if agreeing is None:
            return
        labels = labels_of(shadow)
        self.metrics.shadow_agreement.labels(*labels, "true").inc(agreeing)
        self.metrics.shadow_agreement.labels(*labels, "false").inc(rows - agreeing)

    # -- prediction log --------------------------------------------------------------------

    def _open_prediction_log(self) -> Any:
        config = self.deployment.prediction_log
        if not config.enabled:
            return None
        from conveyor.serving.predlog import PredictionLogger

        logger = PredictionLogger(
            self.prediction_log_root,
            sample_rate=config.sample_rate,
            max_queue_rows=config.max_queue_rows,
            flush_interval_s=config.flush_interval_s,
            on_written=self.metrics.log_written,
            on_dropped=self.metrics.log_dropped,
        )
        logger.start()
        return logger

    @property
    def prediction_log_root(self) -> str:
        """Where the prediction log (and the feedback beside it) is kept."""
        configured = self.deployment.prediction_log.root_url
        return configured or f"{self.settings.resolved_artifact_root().rstrip('/')}/predictions"

    def _logs(self, route: ModelRoute, served: ServedModel) -> bool:
        return self.prediction_log is not None and route.config.log_predictions and served.spec.kind != "free"

    def _log(
        self, served: ServedModel, columns: Columns, outputs: Outputs, request_id: str, started: float
    ) -> None:
        """Queue one record; the logger never blocks and counts what it drops."""
        from conveyor.serving.predlog import PredictionRecord

        record = PredictionRecord(
            request_id=request_id,
            timestamp=datetime.now(UTC),
            model=served.model,
            version=served.version,
            alias=served.alias,
            variant=served.variant,
            inputs=columns,
            outputs=record_outputs(outputs, served.classes),
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        self.prediction_log.submit(record)

    def spawn(self, coroutine: Any) -> None:
        """Run ``coroutine`` in the background, kept referenced until it ends."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def labels_of(served: ServedModel) -> tuple[str, str, str, str]:
    """``(model, version, alias, variant)``: the metric labels of a served version."""
    return served.model, served.version, served.alias or "", served.variant


def record_outputs(
    outputs: Mapping[str, np.ndarray], classes: tuple[Any, ...] | None
) -> dict[str, np.ndarray]:
    """``prediction``, and ``proba_<class>`` per class, as monitoring reads them from the log."""
    out: dict[str, np.ndarray] = {}
    for name, array in outputs.items():
        if name == PROBA and classes is not None and array.ndim == 2:
            out.update({f"proba_{c}": array[:, j] for j, c in enumerate(classes)})
        else:
            out["prediction" if name == PREDICT else name] = array
    return out
