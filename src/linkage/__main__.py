"""`python -m linkage` runs the CLI."""

from .cli import main

main()
