"""One loaded model version as the server runs it: checked columns in, named outputs out.

``LoadedModel.predict`` enforces the signature by building a pandas DataFrame; the
server has already checked the request column by column (``validation``), so it calls
the flavor directly with the cheapest input the model accepts. Which input that is
gets decided once, at warm-up, by trying: a NumPy matrix when the model gives the same
answer from it without a warning, else a DataFrame (a scikit-learn pipeline that
selects columns by name needs one).

Outputs are a mapping of names to arrays with one row per input row: ``predict`` for
a model's one output, and ``predict_proba`` (one column per class) for classifiers
when asked for, as MLServer names them; a model returning several outputs (ONNX, a
DataFrame) keeps their names.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from conveyor.serving.validation import TENSOR_INPUT, Columns, InputSpec, MatrixColumns, columns_of

if TYPE_CHECKING:
    from conveyor.models import LoadedModel
    from conveyor.serving.batching import Batcher

__all__ = ["PREDICT", "PROBA", "Outputs", "ServedModel", "prepare"]

log = logging.getLogger("conveyor.serving")

#: One array per output, each with one row per input row.
Outputs = dict[str, np.ndarray]
PREDICT = "predict"
PROBA = "predict_proba"
#: Flavors whose models run a whole batch in one vectorized call.
VECTORIZED_FLAVORS = frozenset({"sklearn", "xgboost", "lightgbm", "onnx"})
#: Flavors whose ``raw`` may expose a scikit-learn ``predict_proba``.
PROBA_FLAVORS = frozenset({"sklearn", "xgboost", "lightgbm"})
InputForm = Literal["matrix", "frame", "array", "dict"]


@dataclass(eq=False)
class ServedModel:
    """A loaded version of one variant of one served model, ready to predict."""

    model: str
    variant: str
    version: str
    alias: str | None
    loaded: LoadedModel
    spec: InputSpec
    #: What the flavor is given: see the module docstring.
    input_form: InputForm = "frame"
    #: Class labels when the model has ``predict_proba``; None otherwise.
    classes: tuple[Any, ...] | None = None
    #: Output name -> (dtype, per-row shape), learned at warm-up; for model metadata.
    output_meta: dict[str, tuple[np.dtype, tuple[int, ...]]] = field(default_factory=dict)
    load_seconds: float = 0.0
    #: What ``predict`` calls: the loaded model, or a copy that takes a NumPy matrix
    #: silently (see :func:`_cheapest_form`).
    native: Any = field(default=None, repr=False)
    batcher: Batcher | None = field(default=None, repr=False)
    #: ``predict``'s cost, measured at warm-up: seconds per call and per row (None: unknown).
    cost: tuple[float, float] | None = None
    #: Requests that hold this model now; it is closed when it is retired and this is 0.
    in_flight: int = 0
    retired: bool = False

    @property
    def flavor(self) -> str:
        return self.loaded.manifest.flavor

    @property
    def vectorizes(self) -> bool:
        return self.flavor in VECTORIZED_FLAVORS and self.spec.kind != "free"

    def predict_seconds(self, rows: int) -> float | None:
        """How long ``predict`` is expected to take on ``rows`` rows; None: not measured."""
        if self.cost is None:
            return None
        per_call, per_row = self.cost
        return per_call + per_row * rows

    def predict(self, columns: Columns, *, proba: bool = False) -> Outputs:
        """The model's outputs for checked ``columns``; in a worker thread, or on the event
        loop when quick (see :mod:`~conveyor.serving.batching`).

        Raises:
            Exception: whatever the model raises.
            ValueError: an output that does not have one row per input row.
        """
        native = self.loaded.raw if self.native is None else self.native
        data = self._model_input(columns)
        outputs = _named_outputs(self.loaded.flavor.predict(native, data))
        if proba and self.classes is not None:
            outputs[PROBA] = np.asarray(native.predict_proba(data))
        rows = len(next(iter(columns.values())))
        for name, array in outputs.items():
            if array.ndim == 0 or len(array) != rows:
                raise ValueError(
                    f"Output {name!r} has shape {array.shape}, not one row per input row ({rows})"
                )
        return outputs

    def _model_input(self, columns: Columns, form: InputForm | None = None) -> Any:
        form = form or self.input_form
        if form == "array":
            return columns[TENSOR_INPUT]
        if form == "dict":
            return columns
        if form == "matrix":
            if isinstance(columns, MatrixColumns):
                return columns.matrix
            return np.column_stack(list(columns.values()))
        return _frame(columns)


def prepare(served: ServedModel) -> ServedModel:
    """Pick the input form, learn the outputs, and warm the model up with one prediction.

    The saved input example is used when there is one, else a synthetic row built from
    the signature. An example that fails raises (the model is broken); a synthetic row
    that fails is only logged, because neutral values (an empty string, say) may be
    values the model never saw.

    Raises:
        Exception: the model failed on its own input example.
    """
    spec = served.spec
    served.input_form = {"tensor": "array", "tensors": "dict"}.get(spec.kind, "frame")  # type: ignore[assignment]
    raw = served.loaded.raw
    if served.flavor in PROBA_FLAVORS and callable(getattr(raw, "predict_proba", None)):
        classes = getattr(raw, "classes_", None)
        served.classes = tuple(np.asarray(classes).tolist()) if classes is not None else None
    example = served.loaded.input_example
    if spec.kind == "free" and example is None:
        log.warning(
            "Model %s (%s) has no signature and no input example: not warmed up", served.model, served.version
        )
        return served
    try:
        columns = spec.validate(columns_of(example)) if example is not None else spec.synthetic_row()
        columns = {name: array[:1] for name, array in columns.items()}
        started = time.perf_counter()
        outputs = served.predict(columns, proba=True)
        first = time.perf_counter() - started
    except Exception:
        if example is not None:
            raise
        log.warning(
            "Model %s (%s) failed on a synthetic row; serving it anyway",
            served.model,
            served.version,
            exc_info=True,
        )
        return served
    served.output_meta = {name: (a.dtype, a.shape[1:]) for name, a in outputs.items()}
    if spec.kind == "dataframe" and served.flavor in VECTORIZED_FLAVORS:
        _cheapest_form(served, columns, outputs)
    if first <= COST_BUDGET_S:
        served.cost = _measure_cost(served, columns)
    return served


#: Rows of the larger of the two predictions that measure a model's cost.
COST_ROWS = 64
#: Most time spent measuring (a slow model gets one call on one row).
COST_BUDGET_S = 0.05


def _measure_cost(served: ServedModel, row: Columns) -> tuple[float, float] | None:
    """``(seconds per call, seconds per row)`` of ``predict``: the fastest of a few calls on
    one row and on :data:`COST_ROWS` rows (the fastest, because a busy machine only adds)."""
    try:
        one = _fastest(served, row)
        if one is None:
            return None
        many = _fastest(served, {name: np.repeat(a, COST_ROWS, axis=0) for name, a in row.items()})
    except Exception:
        log.debug("Could not time %s (%s)", served.model, served.version, exc_info=True)
        return None
    if many is None:
        return None  # 64 rows take over 50 ms: never quick enough to run inline
    per_row = max(0.0, (many - one) / (COST_ROWS - 1))
    return max(0.0, one - per_row), per_row


def _fastest(served: ServedModel, columns: Columns, repeats: int = 5) -> float | None:
    """The fastest of up to ``repeats`` calls, within :data:`COST_BUDGET_S` (None: over it)."""
    best = float("inf")
    spent = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        served.predict(columns)
        took = time.perf_counter() - started
        best, spent = min(best, took), spent + took
        if spent > COST_BUDGET_S:
            break
    return best if best <= COST_BUDGET_S else None


def _cheapest_form(served: ServedModel, columns: Columns, reference: Outputs) -> None:
    """Switch to a NumPy matrix when the model answers it as it answers a DataFrame, silently.

    A scikit-learn estimator fitted on a DataFrame warns when it gets a matrix (it cannot
    check the column names), and checking a DataFrame costs it about 0.25 ms per call,
    more than a small model's whole ``predict``. The server has already put the columns
    in the signature's order; when that order is the estimator's ``feature_names_in_``,
    a shallow copy without the names answers the matrix silently. Meta-estimators
    (pipelines, column transformers) keep their DataFrame: they may select columns by
    name. Either way the switch is made only if the answers are identical.
    """
    if not all(a.dtype.kind in "biuf" for a in columns.values()):
        return
    raw = served.loaded.raw
    for native in (raw, _without_feature_names(raw, tuple(columns))):
        if native is None:
            continue
        if _answers_matrix(served, native, columns, reference):
            served.native, served.input_form = native, "matrix"
            return


def _answers_matrix(served: ServedModel, native: Any, columns: Columns, reference: Outputs) -> bool:
    data = served._model_input(columns, "matrix")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            candidate = _named_outputs(served.loaded.flavor.predict(native, data))
            if served.classes is not None:
                candidate[PROBA] = np.asarray(native.predict_proba(data))
    except Exception:
        return False
    same = candidate.keys() == reference.keys() and all(
        np.array_equal(candidate[k], reference[k]) for k in candidate
    )
    return same and not caught


def _without_feature_names(raw: Any, names: tuple[str, ...]) -> Any:
    """A shallow copy of a plain estimator fitted on exactly these columns, minus their names."""
    fitted = getattr(raw, "feature_names_in_", None)
    if fitted is None or tuple(fitted) != names or hasattr(raw, "steps") or hasattr(raw, "transformers"):
        return None
    unnamed = copy.copy(raw)
    with contextlib.suppress(AttributeError):
        del unnamed.feature_names_in_
        return unnamed
    return None


def _frame(columns: Columns) -> Any:
    import pandas as pd

    arrays = list(columns.values())
    first = arrays[0].dtype
    if first.kind in "biuf" and all(a.dtype == first and a.ndim == 1 for a in arrays):
        return pd.DataFrame(np.column_stack(arrays), columns=list(columns), copy=False)
    return pd.DataFrame(columns, copy=False)


def _named_outputs(result: Any) -> Outputs:
    """Whatever ``predict`` returned, as named arrays; see the module docstring."""
    if isinstance(result, Mapping):
        return {str(k): np.asarray(v) for k, v in result.items()}
    if type(result).__name__ == "DataFrame" and hasattr(result, "columns"):
        return {str(c): result[c].to_numpy() for c in result.columns}
    if hasattr(result, "to_numpy"):
        return {PREDICT: result.to_numpy()}
    return {PREDICT: np.asarray(result)}
