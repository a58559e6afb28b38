"""structlog configured once per process.

Events have dotted names and fields: `log.info("training.product.finished", job_id=...)`.
The CLI keeps the terminal for its tables: it sends JSON lines to
`OVENCAST_HOME/logs/ovencast.log` and only warnings to stderr.

Three rules keep logging from hurting the service:
- **Off the event loop.** Records are handed to a queue and formatted and written by a
  listener thread (`DeferredQueueHandler`): formatting a traceback never blocks requests.
- **Tracebacks without local variables**, at most `TRACEBACK_FRAMES` frames, as text in
  the `exception` field of JSON lines (a dict of locals made one 500's log line 580 KB).
- **No secrets.** Every string of every event, the traceback included, passes
  `redact`: passwords in URLs (`postgresql://user:secret@host` -> `user:***@`),
  `password=...`-style pairs (libpq connection strings) and API keys (`ovk_...`).

While a span is current (tracing on, observability/tracing.py), an event carries its
`trace_id` and `span_id` (hex, as trace backends show them), so that a log line leads to
its trace and back.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import re
import signal
import sys
import traceback
from collections.abc import Mapping, MutableMapping
from pathlib import Path
from typing import Any

import structlog

TRACEBACK_FRAMES = 20
_URL_PASSWORD = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):[^@/\s]+@")
_KEY_VALUE_PASSWORD = re.compile(r"(?i)\b(password|passwd|pwd|secret|token)=([^\s&'\"]+)")
_API_KEY = re.compile(r"\bovk_[A-Za-z0-9_-]{8,}")
_configured = False
_listener: logging.handlers.QueueListener | None = None


def redact(text: str) -> str:
    text = _URL_PASSWORD.sub(r"\g<scheme>:***@", text)
    text = _KEY_VALUE_PASSWORD.sub(r"\1=***", text)
    return _API_KEY.sub("ovk_***", text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    return value


def _redact_event(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    return {key: _redact_value(value) for key, value in event.items()}


def _format_exception(exc_info: Any) -> str:
    """A traceback as text: no local variables, the innermost TRACEBACK_FRAMES frames."""
    kind, value, tb = exc_info
    return "".join(traceback.format_exception(kind, value, tb, limit=-TRACEBACK_FRAMES))


def add_trace_ids(_: Any, __: str, event: MutableMapping[str, Any]
                  ) -> MutableMapping[str, Any]:
    """At the call, in the caller's context: the current span's trace and span ids, if
    any (stdlib records, formatted in the listener thread, get none). Nothing
    is imported for it: without OpenTelemetry's trace API loaded there is no span."""
    otel_trace = sys.modules.get("opentelemetry.trace")
    if otel_trace is None:
        return event
    context = otel_trace.get_current_span().get_span_context()
    if context.is_valid:
        event["trace_id"] = format(context.trace_id, "032x")
        event["span_id"] = format(context.span_id, "016x")
    return event


def _capture_exc_info(_: Any, __: str, event: MutableMapping[str, Any]
                      ) -> MutableMapping[str, Any]:
    """In the logging thread: `exc_info=True` becomes the exception itself (cheap), to be
    formatted later by the listener, which no longer knows the current exception."""
    if event.get("exc_info") is True:
        event["exc_info"] = sys.exc_info()
    return event


def _exception_text(_: Any, __: str, event: MutableMapping[str, Any]
                    ) -> MutableMapping[str, Any]:
    exc_info = event.pop("exc_info", None)
    record = event.get("_record")
    if exc_info is True:  # resolved when the record was made, not here in the listener
        exc_info = getattr(record, "exc_info", None)
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    if exc_info and exc_info[0] is not None:
        event["exception"] = _format_exception(exc_info)
    return event


class DeferredQueueHandler(logging.handlers.QueueHandler):
    """Hands the record to the listener thread as it is: the stdlib QueueHandler formats
    it (traceback included) in the calling thread, which is the event loop's."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def configure_logging(*, level: str = "INFO", json_to_stderr: bool = False,
                      log_file: Path | None = None, stderr_level: str | None = None) -> None:
    global _configured, _listener
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
        processors=[*shared, add_trace_ids, _capture_exc_info,
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    finish: list[structlog.types.Processor] = [
        _exception_text, structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        _redact_event]
    json_formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared, processors=[*finish, structlog.processors.JSONRenderer()])
    console_formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[*finish, structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback)])
    handlers: list[logging.Handler] = []
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setFormatter(json_formatter if json_to_stderr else console_formatter)
    stderr.setLevel((stderr_level or level).upper())
    handlers.append(stderr)
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file, encoding="utf-8")
        file_handler.setFormatter(json_formatter)
        file_handler.setLevel(level.upper())
        handlers.append(file_handler)
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    _listener = logging.handlers.QueueListener(records, *handlers,
                                               respect_handler_level=True)
    _listener.start()
    atexit.register(_listener.stop)
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level.upper())
    root.addHandler(DeferredQueueHandler(records))
    # Prophet/cmdstanpy log every fit at INFO; keep them to warnings.
    for noisy in ("cmdstanpy", "prophet", "optuna", "alembic", "aiosqlite", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def flush_before_signal_exit(signals: tuple[signal.Signals, ...] = (
        signal.SIGTERM, signal.SIGINT)) -> None:
    """A server re-raises SIGTERM after its graceful shutdown (uvicorn does), which ends the
    process without `atexit`: write the queued records first, then die of the signal."""

    def handler(signum: int, _frame: Any) -> None:
        if _listener is not None:
            _listener.stop()
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    for sig in signals:
        signal.signal(sig, handler)


def get_logger(name: str = "ovencast") -> structlog.stdlib.BoundLogger:
    return structlog.stdlib.get_logger(name)
