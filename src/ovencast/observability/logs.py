"""structlog configured once per process.

Events have dotted names and fields: `log.info("training.product.finished", job_id=...)`.
The CLI keeps the terminal for its tables: it sends JSON lines to
`OVENCAST_HOME/logs/ovencast.log` and only warnings to stderr.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import structlog

_configured = False


def configure_logging(*, level: str = "INFO", json_to_stderr: bool = False,
                      log_file: Path | None = None, stderr_level: str | None = None) -> None:
    global _configured
    if _configured:
        return
    _configured = True
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        timestamper,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level.upper())
    json_formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer()])
    console_formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.dev.ConsoleRenderer(colors=False)])
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(json_formatter if json_to_stderr else console_formatter)
    stderr.setLevel((stderr_level or level).upper())
    root.addHandler(stderr)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(json_formatter)
        file_handler.setLevel(level.upper())
        root.addHandler(file_handler)
    # Prophet/cmdstanpy log every fit at INFO; keep them to warnings.
    for noisy in ("cmdstanpy", "prophet", "optuna", "alembic", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def get_logger(name: str = "ovencast") -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
