"""The `ovencast` command line (typer + rich)."""
