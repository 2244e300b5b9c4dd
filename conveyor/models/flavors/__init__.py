"""Model flavors: how each framework's models become files and come back.

Tried in this order when ``save`` picks one by the model's type:

- ``onnx``: an ``onnx.ModelProto`` -> ``model.onnx``, run with onnxruntime.
- ``xgboost``: a ``Booster`` or ``XGBClassifier``/``XGBRegressor``/... -> ``model.ubj``
  (XGBoost's native UBJSON).
- ``lightgbm``: a ``Booster`` -> ``model.txt`` (LightGBM's native text); a wrapper
  (``LGBMClassifier``...) also -> ``model.skops`` for its scikit-learn state.
- ``sklearn``: any estimator, pipelines included -> ``model.skops``.
- ``python_function``: anything with ``predict`` -> ``model.pkl`` (cloudpickle), only
  with ``allow_pickle=True`` at save and at load.

None but ``python_function`` runs code from the files when loading: skops files are
loaded only when every type in them is a scikit-learn, NumPy or SciPy type (plus
LightGBM's for its wrappers) or one the caller trusts. Write a new flavor by
subclassing :class:`Flavor` and registering it with :func:`conveyor.models.register_flavor`.
"""

from __future__ import annotations

from collections.abc import Mapping

from conveyor.models.flavors._base import Flavor, LoadOptions, PickleWarning
from conveyor.models.flavors._lightgbm import LightGBMFlavor
from conveyor.models.flavors._onnx import OnnxFlavor
from conveyor.models.flavors._pyfunc import PythonFunctionFlavor
from conveyor.models.flavors._registry import FlavorRegistry
from conveyor.models.flavors._sklearn import SklearnFlavor
from conveyor.models.flavors._xgboost import XGBoostFlavor

__all__ = [
    "Flavor",
    "FlavorRegistry",
    "LightGBMFlavor",
    "LoadOptions",
    "OnnxFlavor",
    "PickleWarning",
    "PythonFunctionFlavor",
    "SklearnFlavor",
    "XGBoostFlavor",
    "default_registry",
    "registry",
]

#: The registry ``conveyor.models.save`` and ``load`` use, holding the built-in flavors.
default_registry = FlavorRegistry()
for _flavor in (OnnxFlavor(), XGBoostFlavor(), LightGBMFlavor(), SklearnFlavor(), PythonFunctionFlavor()):
    default_registry.register(_flavor)

#: Read-only view of :data:`default_registry`: name -> flavor, in selection order.
registry: Mapping[str, Flavor] = default_registry.flavors
