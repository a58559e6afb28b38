"""Declarative base and the column types every table shares."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import DateTime, Enum, MetaData
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

# Stable constraint names so that Alembic migrations are identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend.

    PostgreSQL stores `timestamptz`; SQLite has no time zones, so values are normalised to
    UTC on the way in and marked UTC on the way out. Naive datetimes are refused: SPEC says
    every stored timestamp is timezone-aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


# The largest value of an Integer column (PostgreSQL INTEGER): ids in requests are
# range-checked against it, so that a larger one is refused as a bad request instead of
# failing in the driver.
MAX_ROW_ID = 2**31 - 1

STATE_LENGTH = 20


def state_enum(enum: type[StrEnum], *, name: str) -> Enum:
    """A state column's type: the enum's values (not its member names) in a VARCHAR(20),
    with a CHECK constraint `ck_<table>_<name>` on every backend."""
    return Enum(enum, name=name, native_enum=False, create_constraint=True,
                validate_strings=True, length=STATE_LENGTH,
                values_callable=lambda cls: [member.value for member in cls])
