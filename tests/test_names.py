"""What a name may be (ovencast/names.py): a defined character set and length."""

from __future__ import annotations

import pytest

from ovencast.names import COLUMN_NAME, PRODUCT_NAME, TENANT_NAME, NameRule, storable

VALID = ["bread", "Bäckerei Nord", "Croissant (groß) #2", "Brötchen 50% & Co.", "パン",
         "café au lait", "rye-bread_v2", "x", "b" * 200, "Pain  complet"]


@pytest.mark.parametrize("name", VALID)
def test_valid_product_names(name: str) -> None:
    assert PRODUCT_NAME.problem(name) is None


@pytest.mark.parametrize(("name", "words"), [
    ("", "is empty"),
    ("b" * 201, "201 characters long (at most 200)"),
    (" bread", "starts or ends with a space"),
    ("bread ", "starts or ends with a space"),
    ("bre\x00ad", "NUL (U+0000) at position 4"),
    ("bread\n", "U+000A"),
    ("a\tb", "U+0009"),
    ("\x7fx", "U+007F"),
    ("zero\u200bwidth", "U+200B ZERO WIDTH SPACE"),
    ("no\u00a0break", "U+00A0 NO-BREAK SPACE"),
    ("line\u2028sep", "U+2028"),
    ("bidi\u202eevil", "U+202E"),
    ("private\ue000use", "U+E000"),
    ("lone\ud800surrogate", "U+D800"),
])
def test_refused_product_names(name: str, words: str) -> None:
    problem = PRODUCT_NAME.problem(name)
    assert problem is not None
    assert words in problem


def test_lengths_match_the_database_columns() -> None:
    assert (PRODUCT_NAME.max_length, COLUMN_NAME.max_length, TENANT_NAME.max_length) == (
        200, 100, 100)


@pytest.mark.parametrize("name", ["a/b", "a\\b"])
def test_a_tenant_name_is_a_path_segment(name: str) -> None:
    assert TENANT_NAME.problem(name) == f"must not contain {name[1]!r}"
    assert PRODUCT_NAME.problem(name) is None


def test_extra_forbidden_characters_apply_only_to_their_rule() -> None:
    rule = NameRule("thing", 10, forbidden="#")
    assert rule.problem("a#b") == "must not contain '#'"
    assert rule.problem("ab") is None


@pytest.mark.parametrize(("text", "expected"), [
    ("kiel", True), ("Bäckerei", True), ("a\tb", True),  # refused as a name, but storable
    ("a\x00b", False), ("a\udc80b", False),
])
def test_storable(text: str, expected: bool) -> None:
    assert storable(text) is expected
