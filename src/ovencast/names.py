"""What a name may be: a product, a regressor column, a tenant.

A name is shown in tables, written into CSV and JSON, used in URLs, log lines and
artifact keys, so its characters are defined, not "whatever the bytes were": letters,
combining marks, digits, punctuation, symbols and the plain space (U+0020), at least one
character, at most the column's length, never starting or ending with a space. Control
characters (NUL, tab, newline, ...), other whitespace and invisible format characters,
surrogates, private-use and unassigned code points are refused.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator

# Unicode general categories a name may contain (plus U+0020): L* letters, M* marks, N*
# numbers, P* punctuation, S* symbols. Not Z* (other spaces, line/paragraph separators),
# nor C* (control, format, surrogate, private use, unassigned).
ALLOWED_CATEGORIES = frozenset(
    "Lu Ll Lt Lm Lo Mn Mc Me Nd Nl No Pc Pd Ps Pe Pi Pf Po Sm Sc Sk So".split())  # noqa: SIM905
CHARACTER_SET = "letters, marks, digits, punctuation, symbols and spaces"


@dataclass(frozen=True)
class NameRule:
    """A kind of name: its longest length and characters refused on top of the common
    rule (a tenant name is a URL path segment: no '/')."""

    what: str  # "product name", "column name", "tenant name"
    max_length: int
    forbidden: str = ""

    def problem(self, name: str) -> str | None:
        """Why `name` is not a valid name (one short clause), or None."""
        if not name:
            return "is empty"
        if len(name) > self.max_length:
            return f"is {len(name)} characters long (at most {self.max_length})"
        if name[0] == " " or name[-1] == " ":
            return "starts or ends with a space"
        for position, char in enumerate(name, start=1):
            if char in self.forbidden:
                return f"must not contain {char!r}"
            if char != " " and unicodedata.category(char) not in ALLOWED_CATEGORIES:
                return (f"contains {_describe(char)} at position {position}; a {self.what} "
                        f"has {CHARACTER_SET}")
        return None


def storable(text: str) -> bool:
    """Whether `text` can be stored or looked up at all: PostgreSQL refuses NUL in text,
    and a lone surrogate cannot be encoded. A lookup of a name that is not storable
    finds nothing (instead of failing in the driver)."""
    return "\0" not in text and not any("\ud800" <= char <= "\udfff" for char in text)


def _require_storable(text: str) -> str:
    if not storable(text):
        raise ValueError("contains NUL or an unpaired surrogate, which no stored name has")
    return text


# A name given in a request (a query or path parameter) that is looked up, not created:
# one that could never have been stored is a 422 with a reason, not a driver error.
LookupName = Annotated[str, AfterValidator(_require_storable)]


def _describe(char: str) -> str:
    code = f"U+{ord(char):04X}"
    name = unicodedata.name(char, "")
    if char == "\0":
        return f"NUL ({code})"
    return f"{code} {name}" if name else code


PRODUCT_NAME = NameRule("product name", 200)  # sales_observations.product: VARCHAR(200)
COLUMN_NAME = NameRule("column name", 100)  # regressor_observations.name: VARCHAR(100)
# tenants.name: VARCHAR(100); a URL path segment.
TENANT_NAME = NameRule("tenant name", 100, forbidden="/\\")
