"""One error root with named kinds. A call site raises a class, never passes a status: the
CLI prints `message` on one line and exits 1; the API (`api/errors.py`) derives the
response's status and its `error` code from the class.

Kinds (what the caller can do about it):
- `NotFound`: the thing asked for does not exist (or is not the caller's to see).
- `Conflict`: it exists but its state forbids the request (a job already ended, a name
  taken, a product being trained).
- `InvalidRequest`: the request or its data breaks a rule; the message says which.
- `PayloadTooLarge`: an upload or body over its size limit.
- `Unavailable`: something the request needs is down or not ready (database schema,
  an upstream service); retry later.
- `BadGateway`: an upstream service answered, but wrongly.
- `ArtifactRefused`: a stored model artifact cannot be used (checksum mismatch,
  missing file): a server-side integrity failure, never served.
- `Misconfigured`: the settings contradict each other; the operator must fix them.
- `ModelFitFailed`: no model family could be fitted to a product's data; a training
  outcome recorded with the run, never an answer to a request.
- `Unauthenticated`: no API key, or one that is unknown or revoked.
- `Forbidden`: the key is valid but its role (or scope) does not allow the request. A key
  of one tenant asking for another tenant's things gets `NotFound`, never this: it must
  not learn that they exist.
- `RateLimited`: the caller's tenant made too many requests; `retry_after_s` says when
  to try again.
"""

from __future__ import annotations


class OvencastError(Exception):
    """The root: never raised itself, only through one of the named kinds below."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class NotFound(OvencastError):
    pass


class Conflict(OvencastError):
    pass


class InvalidRequest(OvencastError):
    pass


class PayloadTooLarge(OvencastError):
    pass


class Unavailable(OvencastError):
    pass


class BadGateway(OvencastError):
    pass


class ArtifactRefused(OvencastError):
    pass


class Misconfigured(OvencastError):
    pass


class ModelFitFailed(OvencastError):
    pass


class Unauthenticated(OvencastError):
    pass


class Forbidden(OvencastError):
    pass


class RateLimited(OvencastError):
    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class TenantNotFound(NotFound):
    pass


class ModelNotFound(NotFound):
    pass


class JobNotFound(NotFound):
    pass


class ForecastRunNotFound(NotFound):
    """No saved forecast run of that id (or not the caller's tenant's)."""


class TenantExists(Conflict):
    """A tenant of that name is already registered."""


class TrainingInProgress(Conflict):
    """Another process holds the (tenant, product) training lock."""


class JobAlreadyEnded(Conflict):
    """The job has reached an end state; it cannot be cancelled any more."""


class InvalidDataset(InvalidRequest):
    """A dataset file breaks a rule. `location` says where: file, line, column."""


class ForecastUnavailable(InvalidRequest):
    """A forecast cannot be made, e.g. a regressor is unknown for the requested dates."""


class ChecksumMismatch(ArtifactRefused):
    """A stored artifact's bytes do not match the SHA-256 recorded in the database."""


class ArtifactMissing(ArtifactRefused):
    """Nothing is stored where the database says the artifact is."""


class SchemaNotReady(Unavailable):
    """The database has no schema, or one behind the code's head revision."""


def failure_reason(exc: BaseException) -> str:
    """What a job or run that ended on `exc` records as its reason: an expected error's
    message as it is, anything else with its type (the traceback goes to the log)."""
    from ovencast.observability.logs import redact

    if isinstance(exc, OvencastError):
        return redact(exc.message)
    return redact(f"unexpected error: {type(exc).__name__}: {exc}")[:2000]
