"""``python -m conveyor.cli``: the ``conveyor`` command without the console script on PATH."""

from conveyor.cli import main

main()
