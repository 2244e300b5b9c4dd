"""scikit-learn estimators and pipelines, stored with skops (no pickle)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor.models.flavors._base import Flavor, LoadOptions, check_choice, qualname
from conveyor.models.flavors._skops import dump_skops, load_skops

__all__ = ["SklearnFlavor"]

_FILE = "model.skops"


class SklearnFlavor(Flavor):
    """Any scikit-learn estimator, ``Pipeline`` and ``ColumnTransformer`` included.

    Stored with skops, which rebuilds the estimator without unpickling; types outside
    scikit-learn, NumPy and SciPy (a custom transformer in a pipeline) must be named in
    ``trusted_types`` at load. The manifest lists them under ``skops_types``.
    """

    name = "sklearn"
    framework = "scikit-learn"
    requirements = ("scikit-learn", "skops", "numpy", "scipy")
    types = ("sklearn.base.BaseEstimator",)

    def dump(self, model: Any, folder: Path) -> dict[str, Any]:
        found = dump_skops(model, folder / _FILE)
        return {"serialization_format": "skops", "model_class": qualname(model), "skops_types": found}

    def load(self, folder: Path, fields: Mapping[str, Any], options: LoadOptions) -> Any:
        check_choice(fields, "serialization_format", ("skops",))
        return load_skops(folder / _FILE, options)
