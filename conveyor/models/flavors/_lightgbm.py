"""LightGBM boosters in LightGBM's text format; scikit-learn wrappers via skops as well."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from conveyor.errors import InvalidInput
from conveyor.models.flavors._base import Flavor, LoadOptions, check_choice, qualname
from conveyor.models.flavors._skops import dump_skops, load_skops

__all__ = ["LightGBMFlavor"]

_BOOSTER = "lightgbm.basic.Booster"
_TEXT = "model.txt"
_WRAPPER = "model.skops"
#: What a wrapper's skops file holds besides scikit-learn/NumPy types, trusted here.
_VOUCHED = ("lightgbm.", "collections.OrderedDict")


class LightGBMFlavor(Flavor):
    """A ``lightgbm.Booster`` or a scikit-learn wrapper (``LGBMClassifier``, ...).

    The booster is always written as ``model.txt`` (LightGBM's native text, readable by
    any LightGBM and by tools such as Triton's FIL back end). A wrapper also needs its
    scikit-learn state (classes, label encoder, parameters), which the text format does
    not hold, so it is written to ``model.skops`` as well and loaded from there, with
    LightGBM's own types trusted; ``Booster(model_file="model.txt")`` still works on it.
    """

    name = "lightgbm"
    framework = "lightgbm"
    requirements = ("lightgbm", "numpy", "scipy", "scikit-learn", "skops")
    types = (_BOOSTER, "lightgbm.sklearn.LGBMModel")

    def dump(self, model: Any, folder: Path) -> dict[str, Any]:
        import lightgbm

        if isinstance(model, lightgbm.Booster):
            model.save_model(str(folder / _TEXT))
            return {"model_class": _BOOSTER, "model_format": "text"}
        try:
            booster = model.booster_
        except lightgbm.compat.LGBMNotFittedError as exc:
            raise InvalidInput(
                f"The {type(model).__name__} is not fitted; call fit() before saving it"
            ) from exc
        booster.save_model(str(folder / _TEXT))
        dump_skops(model, folder / _WRAPPER)
        return {"model_class": qualname(model), "model_format": "text", "sklearn_wrapper": "skops"}

    def load(self, folder: Path, fields: Mapping[str, Any], options: LoadOptions) -> Any:
        import lightgbm

        check_choice(fields, "model_format", ("text",))
        if fields.get("sklearn_wrapper") is None:
            return lightgbm.Booster(model_file=str(folder / _TEXT))
        check_choice(fields, "sklearn_wrapper", ("skops",))
        return load_skops(folder / _WRAPPER, options, vouched=_VOUCHED)
