"""``python -m tropic.cli``: the same as the ``tropic`` command."""

from tropic.cli.main import main

main()
