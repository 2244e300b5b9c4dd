"""XGBoost boosters and scikit-learn wrappers, in XGBoost's own UBJSON/JSON format."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor.errors import InvalidInput
from conveyor.models.flavors._base import Flavor, LoadOptions, check_choice

__all__ = ["XGBoostFlavor", "load_xgboost"]

#: The classes a manifest may name; the loader instantiates one, so never anything else.
MODEL_CLASSES = (
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
    "xgboost.sklearn.XGBRanker",
    "xgboost.sklearn.XGBRFClassifier",
    "xgboost.sklearn.XGBRFRegressor",
)
#: ``xgb`` is the legacy binary format, read for MLflow models only.
MODEL_FORMATS = ("ubj", "json", "xgb")


class XGBoostFlavor(Flavor):
    """An ``xgboost.Booster`` or a scikit-learn wrapper (``XGBClassifier``, ...).

    Saved with ``save_model`` as UBJSON, which for the wrappers also keeps their
    scikit-learn attributes (classes, objective); a subclass of a wrapper is recorded as
    the nearest XGBoost class, since only XGBoost's own classes are loaded back.
    """

    name = "xgboost"
    framework = "xgboost"
    requirements = ("xgboost", "numpy", "scipy")
    types = ("xgboost.core.Booster", "xgboost.sklearn.XGBModel")

    def dump(self, model: Any, folder: Path) -> dict[str, Any]:
        model_class = _known_base(model)
        model.save_model(str(folder / "model.ubj"))
        return {"model_class": model_class, "model_format": "ubj"}

    def load(self, folder: Path, fields: Mapping[str, Any], options: LoadOptions) -> Any:
        model_format = check_choice(fields, "model_format", ("ubj", "json"))
        return load_xgboost(
            folder / f"model.{model_format}", check_choice(fields, "model_class", MODEL_CLASSES)
        )

    def predict(self, model: Any, data: Any) -> Any:
        import xgboost

        if isinstance(model, xgboost.Booster):
            return model.predict(xgboost.DMatrix(data))
        return model.predict(data)


def load_xgboost(path: Path, model_class: str) -> Any:
    """A model of ``model_class`` (one of :data:`MODEL_CLASSES`) read from ``path``."""
    import xgboost

    if model_class not in MODEL_CLASSES:
        raise InvalidInput(f"Refusing to load XGBoost class {model_class!r}; known: {list(MODEL_CLASSES)}")
    model = getattr(xgboost, model_class.rpartition(".")[2])()
    model.load_model(str(path))
    return model


def _known_base(model: object) -> str:
    for cls in type(model).__mro__:
        name = f"{cls.__module__}.{cls.__qualname__}"
        if name in MODEL_CLASSES:
            return name
    raise InvalidInput(f"{type(model).__name__} derives from no XGBoost model class {list(MODEL_CLASSES)}")
