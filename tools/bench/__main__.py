"""``python -m tools.bench``."""

from .command import cli

raise SystemExit(cli())
