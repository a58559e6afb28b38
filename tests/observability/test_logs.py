"""Logging never leaks a secret, never dumps local variables, and carries the stack in
JSON lines (observability/logs.py)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from ovencast.observability.logs import TRACEBACK_FRAMES, redact


@pytest.mark.parametrize(("text", "expected"), [
    ("postgresql+asyncpg://ovencast:s3cr3t@db:5432/prod",
     "postgresql+asyncpg://ovencast:***@db:5432/prod"),
    ("could not connect: host=db user=ovencast password=s3cr3t dbname=prod",
     "could not connect: host=db user=ovencast password=*** dbname=prod"),
    ("key ovk_12_abcdefghijklmnopqrstuvwxyz refused", "key ovk_*** refused"),
    ("redis://:hunter22@cache:6379/0", "redis://:***@cache:6379/0"),
    ("nothing to hide at http://example.org/path", "nothing to hide at http://example.org/path"),
])
def test_secrets_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


SCRIPT = textwrap.dedent("""
    import logging
    from ovencast.observability.logs import configure_logging, get_logger

    configure_logging(json_to_stderr=True)
    log = get_logger("t")

    def deep(n, url):
        huge_local = "L" * 100_000
        if n == 0:
            raise ConnectionError(f"cannot reach {url}")
        return deep(n - 1, url)

    try:
        deep(60, "postgresql://ovencast:s3cr3t@db/prod")
    except ConnectionError:
        log.exception("api.request.failed", dsn="postgresql://ovencast:s3cr3t@db/prod")
    logging.getLogger("uvicorn.error").error("stdlib", exc_info=True)
""")


def test_a_json_line_carries_a_short_stack_without_locals_or_secrets() -> None:
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                            timeout=60, check=True)
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    event = next(e for e in lines if e["event"] == "api.request.failed")
    assert "Traceback (most recent call last)" in event["exception"]
    assert "ConnectionError: cannot reach postgresql://ovencast:***@db/prod" in \
        event["exception"]
    assert event["dsn"] == "postgresql://ovencast:***@db/prod"
    assert event["exception"].count('File "') <= TRACEBACK_FRAMES
    assert "LLLLLLLLLL" not in result.stderr  # no local variables
    assert "s3cr3t" not in result.stderr
    assert len(result.stderr) < 20_000
