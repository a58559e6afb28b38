"""Faults the local data server injects, so timeouts, retries and circuit breakers can be
shown against a real HTTP server.

A fault spec is `TARGET:ACTION[,ACTION...]`:

- TARGET: a service (`sales`, `weather`, `traffic`), `*` for all, or a path glob that
  starts with `/` (`/tenants/*/calendar`).
- ACTION: `status=CODE` (answer CODE with a JSON error body), `delay=SECONDS` (wait before
  answering), `drop` (send the headers and part of the body, then close the connection),
  `malformed` (200 with a body that is not valid JSON), `times=N` (only the next N
  matching requests; default: every request until the fault is removed).

Examples: `weather:status=503`, `sales:delay=2.5`, `traffic:drop,times=2`.
A JSON file holds a list of such specs or of objects with the same keys
(`{"target": "sales", "status": 503, "times": 2}`).
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ovencast.sources.contract import SERVICES

_FLAGS = ("drop", "malformed")
_KEYS = ("status", "delay", "times", *_FLAGS)


@dataclass(frozen=True)
class Fault:
    target: str  # a service, "*", or a path glob starting with "/"
    status: int | None = None
    delay: float = 0.0
    drop: bool = False
    malformed: bool = False
    times: int | None = None  # None: until removed

    def __post_init__(self) -> None:
        if not (self.target == "*" or self.target in SERVICES or self.target.startswith("/")):
            raise ValueError(f"fault target {self.target!r}: expected one of "
                             f"{', '.join(SERVICES)}, '*' or a path starting with '/'")
        if self.status is not None and not 100 <= self.status <= 599:
            raise ValueError(f"fault status {self.status}: expected 100-599")
        if self.delay < 0:
            raise ValueError(f"fault delay {self.delay}: must be >= 0")
        if self.times is not None and self.times < 1:
            raise ValueError(f"fault times {self.times}: must be >= 1")
        if sum((self.status is not None, self.drop, self.malformed)) > 1:
            raise ValueError("a fault has at most one of status, drop, malformed")
        if self.status is None and not (self.drop or self.malformed or self.delay):
            raise ValueError(f"fault for {self.target!r} does nothing: give status=, "
                             f"delay=, drop or malformed")

    def matches(self, service: str | None, path: str) -> bool:
        if self.target == "*":
            return service is not None
        if self.target.startswith("/"):
            return fnmatch.fnmatchcase(path, self.target)
        return self.target == service

    @classmethod
    def parse(cls, spec: str) -> Fault:
        target, sep, actions = spec.strip().partition(":")
        if not sep or not target or not actions:
            raise ValueError(f"fault {spec!r}: expected TARGET:ACTION[,ACTION...], e.g. "
                             f"'weather:status=503'")
        values: dict[str, Any] = {"target": target.strip()}
        for action in actions.split(","):
            key, has_value, raw = (p.strip() for p in action.partition("="))
            if key in _FLAGS and not has_value:
                values[key] = True
                continue
            if key not in _KEYS or not has_value:
                raise ValueError(f"fault {spec!r}: unknown action {action.strip()!r}; "
                                 f"expected status=, delay=, times=, drop or malformed")
            try:
                values[key] = (float(raw) if key == "delay" else
                               raw.lower() in ("1", "true", "yes") if key in _FLAGS else
                               int(raw))
            except ValueError:
                raise ValueError(f"fault {spec!r}: {key}={raw!r} is not a number") from None
        return cls(**values)

    @classmethod
    def from_value(cls, value: str | dict[str, Any]) -> Fault:
        if isinstance(value, str):
            return cls.parse(value)
        unknown = sorted(set(value) - {"target", *_KEYS})
        if unknown:
            raise ValueError(f"fault {value}: unknown keys {unknown}")
        return cls(**value)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def load_faults(specs: list[str]) -> list[Fault]:
    """Faults from command-line values: each a spec, or the path of a JSON file (a list of
    specs or objects)."""
    faults: list[Fault] = []
    for spec in specs:
        if spec.endswith(".json"):
            path = Path(spec)
            try:
                items = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise ValueError(f"fault file {spec}: {exc}") from None
            if not isinstance(items, list):
                raise ValueError(f"fault file {spec}: expected a JSON list")
            faults.extend(Fault.from_value(item) for item in items)
        else:
            faults.append(Fault.parse(spec))
    return faults


@dataclass
class _Active:
    fault: Fault
    remaining: int | None


@dataclass
class FaultTable:
    """The faults in force on one server (mutated by the admin endpoint). Not thread-safe:
    it lives on the server's event loop."""

    _active: list[_Active] = field(default_factory=list)

    def replace(self, faults: list[Fault]) -> None:
        self._active = [_Active(f, f.times) for f in faults]

    def add(self, faults: list[Fault]) -> None:
        self._active.extend(_Active(f, f.times) for f in faults)

    def listing(self) -> list[dict[str, Any]]:
        return [{**a.fault.to_dict(), "remaining": a.remaining} for a in self._active]

    def take(self, service: str | None, path: str) -> list[Fault]:
        """The faults that apply to this request, in the order they were given: every
        matching delay, and the first matching status / drop / malformed (a later one
        waits for a later request). Each taken fault with `times` is used up by one."""
        taken: list[Fault] = []
        answered = False
        for active in list(self._active):
            fault = active.fault
            if not fault.matches(service, path):
                continue
            answers = fault.status is not None or fault.drop or fault.malformed
            if answers and answered:
                continue
            answered = answered or answers
            taken.append(fault)
            if active.remaining is not None:
                active.remaining -= 1
                if active.remaining == 0:
                    self._active.remove(active)
        return taken
