"""Steps, classes and helpers the pipeline definition tests build with.

They live at module level, as in a user's project, so that their (string) annotations
resolve the way they would there; the tests import them from here.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Optional

from conveyor.pipelines import (
    NodeSpec,
    PipelineSpec,
    Step,
    pipeline,
    step,
)

if TYPE_CHECKING:
    from decimal import Decimal as OnlyForTypeCheckers


class Frame:
    """Stands in for a DataFrame."""


class WideFrame(Frame):
    pass


class Model:
    pass


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


@step
def load() -> Frame:
    return Frame()


@step(retries=2, timeout="10m", resources={"cpu": 2, "memory": "4GiB"}, cache=True)
def train(df: Frame, C: float = 1.0) -> Model:
    return Model()


@step
def evaluate(model: Model, df: Frame) -> float:
    return 0.5


@step
def load_wide() -> WideFrame:
    return WideFrame()


@step
def maybe_frame() -> Frame | None:
    return None


@step
def optional_frame(df: Optional[Frame]) -> int:  # noqa: UP045 - the typing spelling is tested too
    return 0


@step
def anything():
    return 1


@step
def takes_anything(x, y: Any = None) -> None:
    return None


@step
def split(df: Frame) -> tuple[Frame, Frame]:
    return df, df


@step
def numbers_() -> tuple[int, ...]:
    return (1, 2)


@step
def ints() -> list[int]:
    return [1, 2, 3]


@step
def strings() -> list[str]:
    return ["a"]


@step
def grid() -> list[float]:
    return [0.1, 1.0]


@step
def square(x: int) -> int:
    return x * x


@step
def fit(C: float, df: Frame) -> Model:
    return Model()


@step
def best(models: list[Model]) -> Model:
    return models[0]


@step
def total(values: Sequence[int]) -> int:
    return sum(values)


@step
def count(n: int) -> int:
    return n


@step
def word(w: str) -> str:
    return w


@step
def counts() -> dict[str, int]:
    return {}


@step
def by_key(table: Mapping[str, int]) -> int:
    return 0


@step
def pick_color(color: Color, mode: Literal["fast", "slow"] = "fast") -> str:
    return color.value


@step
def hidden() -> OnlyForTypeCheckers:  # resolvable only by type checkers
    raise NotImplementedError


@step
def inc(x: int = 0) -> int:
    return x + 1


@step
def make_late() -> Late:  # a class defined further down the module
    return Late()


def _another_load_step() -> Step[[], Frame]:
    @step
    def load() -> Frame:
        return Frame()

    return load


def build(body: Any, **params: Any) -> PipelineSpec:
    """Build a one-off pipeline whose function is ``body``."""
    return pipeline(name="adhoc")(body).build(**params)


def ids(spec: PipelineSpec) -> list[str]:
    return [node.id for node in spec.nodes]


def _gen() -> Any:
    yield 1


async def _coro() -> int:
    return 1


def _star(*rows: int) -> int:
    return 0


def _kw(**extra: int) -> int:
    return 0


def _pos(x: int, /) -> int:
    return x


@pipeline
def tunable(C: float, epochs: int = 10, label: str = "run", verbose: bool = False) -> None:
    train(load(), C=C)


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = 2


@pipeline
def configurable(
    n: int = 1,
    rate: float = 0.1,
    flag: bool = False,
    name: str = "x",
    out: Path = Path("out"),
    kind: Literal["a", "b", 3] = "a",
    mode: Mode = Mode.FAST,
    limit: int | None = None,
    grid: list[float] = [0.1],  # noqa: B006 - a default, never mutated
    untyped=2.5,
    untyped_text="x",
) -> None:
    load()


Pair = tuple[int, str]


def _node(node_id: str, **inputs: Any) -> NodeSpec:
    return NodeSpec(node_id, "inc", f"{__name__}:inc", inc.options, inputs, (int,))


class Late:
    pass
