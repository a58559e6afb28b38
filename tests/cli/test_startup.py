"""The CLI module stays cheap to import: every command, `--help` included, pays for what
`ovencast.cli.main` imports at its top (cli/main.py's docstring). A structural check, not
a timing: the heavy libraries must not be among the modules loaded."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("pandas", "numpy", "sqlalchemy", "lightgbm", "statsforecast", "prophet",
         "fastapi", "procrastinate")


def test_importing_the_cli_loads_no_heavy_library() -> None:
    probe = ("import json, sys; import ovencast.cli.main; "
             f"print(json.dumps(sorted(m for m in {list(HEAVY)!r} if m in sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_help_lists_every_command() -> None:
    result = subprocess.run([sys.executable, "-m", "ovencast", "--help"], capture_output=True,
                            text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    for command in ("import", "validate", "train", "forecast", "models", "activate", "demo",
                    "serve", "worker", "data-server", "db"):
        assert f" {command} " in result.stdout, command
