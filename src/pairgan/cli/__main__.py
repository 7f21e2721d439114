"""``python -m pairgan.cli``."""

from pairgan.cli import main

main()
