"""The key format `ovk_<id>_<secret>`: what parses, what is refused, what is stored."""

from __future__ import annotations

import hashlib

import pytest

from ovencast.keys import tokens


def test_a_new_key_round_trips_and_only_its_hash_is_kept() -> None:
    secret = tokens.new_secret()
    assert len(secret) >= 43  # 32 bytes, URL-safe base64
    key = tokens.format_key(12, secret)
    assert key.startswith("ovk_12_")
    assert tokens.parse_key(key) == tokens.PresentedKey(key_id=12, secret=secret)
    stored = tokens.hash_secret(secret)
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in stored
    assert tokens.secret_matches(secret, stored)
    assert not tokens.secret_matches(secret[:-1] + "x", stored)
    assert tokens.new_secret() != secret


def test_a_secret_may_contain_underscores() -> None:
    assert tokens.parse_key("ovk_3_ab_cd-ef") == tokens.PresentedKey(3, "ab_cd-ef")


@pytest.mark.parametrize("text", [
    "", "ovk_", "ovk_12", "ovk_12_", "ovk__secret", "ovk_x1_secret", "ovk_-1_secret",
    "ovk_0_secret", f"ovk_{2**31}_secret", f"ovk_{2**63}_secret", "OVK_1_secret",
    "sk_1_secret", "Bearer ovk_1_secret", "ovk_１_secret",  # a full-width digit
    "ovk_1_" + "a" * 200,
])
def test_anything_else_is_not_a_key(text: str) -> None:
    assert tokens.parse_key(text) is None


def test_the_display_prefix_shows_the_id_and_a_few_characters() -> None:
    assert tokens.display_prefix(7, "AbC123") == "ovk_7_AbC123..."
