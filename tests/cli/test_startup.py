"""The CLI module stays cheap to import: every command, `--help` included, pays for what
`ovencast.cli.main` imports at its top (cli/main.py's docstring). A structural check, not
a timing: the heavy libraries must not be among the modules loaded."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "numpy", "sqlalchemy", "lightgbm", "statsforecast", "prophet",
         "fastapi", "procrastinate")


def _heavy_after(*modules: str) -> list[str]:
    """The HEAVY libraries loaded by a fresh interpreter that imports `modules`."""
    probe = (f"import json, sys; import {', '.join(modules)}; "
             f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout)
    return loaded


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert _heavy_after("ovencast.cli.main") == []


def test_listing_models_needs_the_database_but_no_forecasting_library() -> None:
    # What `ovencast models` imports when it runs (cli/main.py `models`).
    loaded = _heavy_after("ovencast.cli.main", "ovencast.cli.render",
                          "ovencast.db.runtime", "ovencast.db.session",
                          "ovencast.models.service", "ovencast.tenants.service")
    assert loaded == ["sqlalchemy"]


def test_help_lists_every_command() -> None:
    result = subprocess.run([sys.executable, "-m", "ovencast", "--help"], capture_output=True,
                            text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    for command in ("import", "validate", "train", "forecast", "models", "activate", "demo",
                    "serve", "worker", "data-server", "db"):
        assert f" {command} " in result.stdout, command
