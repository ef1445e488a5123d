"""`python -m grizz_tui` runs the `grizz` command."""

from grizz_tui.cli import main

main()
