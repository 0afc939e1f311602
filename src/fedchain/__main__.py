"""``python -m fedchain``: the same as the ``fedchain`` command."""

from fedchain.cli import main

main()
