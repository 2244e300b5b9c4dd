"""``python -m conveyor``: the ``conveyor`` command, for when the console script is not on PATH."""

from conveyor.cli import main

main()
