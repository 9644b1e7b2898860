"""`python -m accounts` runs the command line."""

from accounts.cli import main

main()
