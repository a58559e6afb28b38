"""Unknown query parameters are refused (422), not ignored: `?products=x` for `?product=x`
or `?start=` for `?from=` would otherwise answer a different question than the one asked,
with a 200. Checked for every API route after its key (`dependencies.get_caller`); the
probes, the console's pages and the job events' WebSocket (its `?token=`) are not under
it.

Hand-written: FastAPI forbids extra query parameters only for a Pydantic model of the
whole query (`model_config = {"extra": "forbid"}`), which would turn each endpoint's
documented parameters into one model parameter."""

from __future__ import annotations

from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from starlette.requests import HTTPConnection


def _names(dependant: Dependant) -> frozenset[str]:
    """The query parameters `dependant` and its sub-dependencies declare, by the name a
    client writes (the alias)."""
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _names(sub)
    return frozenset(names)


_CACHED = "_ovencast_query_names"


def declared_query_names(route: Any) -> frozenset[str]:
    """Per route, once, kept on the route (routes are built at start-up and never change;
    they are not hashable, so no functools.cache)."""
    names: frozenset[str] | None = getattr(route, _CACHED, None)
    if names is None:
        dependant: Dependant | None = getattr(route, "dependant", None)
        names = _names(dependant) if dependant is not None else frozenset()
        setattr(route, _CACHED, names)
    return names


def refuse_unknown_query(connection: HTTPConnection) -> None:
    """RequestValidationError (422, the API's usual body) naming each query parameter
    the route does not declare, and the ones it does."""
    route = connection.scope.get("route")
    if route is None:
        return
    known = declared_query_names(route)
    unknown = [name for name in dict.fromkeys(connection.query_params.keys())
               if name not in known]
    if unknown:
        takes = ", ".join(sorted(known)) or "none"
        raise RequestValidationError([
            {"type": "extra_forbidden", "loc": ("query", name),
             "msg": f"unknown query parameter (this endpoint takes: {takes})",
             "input": connection.query_params.get(name)} for name in unknown])
