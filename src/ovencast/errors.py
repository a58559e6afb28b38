"""One error root. The CLI prints `message` on one line and exits non-zero; the API (later)
turns `status_code` into the response status."""

from __future__ import annotations


class OvencastError(Exception):
    status_code: int = 400

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code

    def __str__(self) -> str:
        return self.message


class NotFound(OvencastError):
    status_code = 404


class TenantNotFound(NotFound):
    pass


class ModelNotFound(NotFound):
    pass


class InvalidDataset(OvencastError):
    """A dataset file breaks a rule. `location` says where: file, line, column."""

    status_code = 422


class TrainingInProgress(OvencastError):
    status_code = 409


class ChecksumMismatch(OvencastError):
    """A stored artifact's bytes do not match the SHA-256 recorded in the database."""

    status_code = 500


class ArtifactMissing(OvencastError):
    status_code = 500


class SchemaNotReady(OvencastError):
    """The database has no schema, or one behind the code's head revision."""

    status_code = 503


class ForecastUnavailable(OvencastError):
    """A forecast cannot be made, e.g. a regressor is unknown for the requested dates."""

    status_code = 422


class TenantExists(OvencastError):
    """A tenant of that name is already registered."""

    status_code = 409
