"""Metaflow's side of the pipeline benchmark: flow files written out before each run.

Metaflow reads a flow's graph from the source of its ``FlowSpec`` class (each step is a
method naming the next with ``self.next``), so a 200-step chain has to exist as 200
methods in a file; ``run.py`` writes the files with the functions below into the run's
temporary folder, untimed, and times ``python <file> --no-pylint run``. This module only
builds text, so it imports nothing from Metaflow and runs in Conveyor's environment.

Every flow prints ``RESULT <value>`` from its ``end`` step, which ``run.py`` checks.
"""

import itertools

_HEADER = "from metaflow import FlowSpec, Parameter, step\n\n\nclass {name}(FlowSpec):\n"
_FOOTER = '\n\nif __name__ == "__main__":\n    {name}()\n'
_END = """
    @step
    def end(self):
        print("RESULT", self.{value})
"""


def _flow(name: str, body: str, value: str) -> str:
    return _HEADER.format(name=name) + body + _END.format(value=value) + _FOOTER.format(name=name)


def one() -> str:
    """The startup baseline: ``start`` then ``end``, the smallest graph Metaflow accepts."""
    body = """
    @step
    def start(self):
        self.x = 0
        self.next(self.end)
"""
    return _flow("OneFlow", body, "x")


def chain(n: int) -> str:
    """``start``, then ``n`` steps ``s1`` ... ``sn`` each adding one, then ``end``."""
    names = [f"s{i}" for i in range(1, n + 1)] + ["end"]
    body = f"""
    @step
    def start(self):
        self.x = 0
        self.next(self.{names[0]})
"""
    for name, following in itertools.pairwise(names):
        body += f"""
    @step
    def {name}(self):
        self.x += 1
        self.next(self.{following})
"""
    return _flow("ChainFlow", body, "x")


def fanout() -> str:
    """A ``foreach`` over ``n`` items (the ``--n`` parameter), a join that sums, ``end``."""
    body = """
    n = Parameter("n", type=int, default=1000)

    @step
    def start(self):
        self.items = list(range(self.n))
        self.next(self.inc, foreach="items")

    @step
    def inc(self):
        self.y = self.input + 1
        self.next(self.join)

    @step
    def join(self, inputs):
        self.total = sum(i.y for i in inputs)
        self.next(self.end)
"""
    return _flow("FanoutFlow", body, "total")
