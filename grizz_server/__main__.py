"""`python -m grizz_server` runs the `grizz-server` CLI."""

from grizz_server.cli import main

if __name__ == "__main__":
    main()
