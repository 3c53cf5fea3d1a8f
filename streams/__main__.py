"""``python -m streams`` is the ``sandan`` command."""

from streams.cli import main

main()
