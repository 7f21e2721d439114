"""``python -m pairgan`` and ``torchrun -m pairgan train ...``."""

from pairgan.cli import main

main()
