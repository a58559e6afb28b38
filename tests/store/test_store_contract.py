"""The `ModelStore` contract, run against every backend in `conftest.backend`.

A new backend passes this file before it is used. The key rules (`validate_key`,
`artifact_key`) are shared by every backend and tested at the end.
"""

from __future__ import annotations

import hashlib

import pytest

from ovencast.errors import ArtifactMissing, ArtifactRefused, ChecksumMismatch
from ovencast.store import BACKUP_PREFIX, FsspecModelStore, artifact_key, validate_key
from ovencast.store.checksum import sha256_hex

from .backends import Backend, SimulatedCrash, flip_one_byte

OLD = b"old model " * 1000
NEW = b"new model, different length " * 3000
KEY = "acme/croissant/prophet/v000001.json"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- round trip ---------------------------------------------------------------------
def test_save_returns_uri_checksum_and_size_and_load_returns_the_bytes(
    store: FsspecModelStore,
) -> None:
    stored = store.save(KEY, OLD)

    assert stored.key == KEY
    assert stored.sha256 == sha(OLD)
    assert stored.size_bytes == len(OLD)
    assert stored.replaced_backup_uri is None
    assert stored.uri == store.uri_for(KEY)
    assert stored.uri.startswith(store.root_uri + "/")
    assert store.exists(stored.uri)
    assert store.load(stored.uri, expected_sha256=stored.sha256) == OLD


def test_load_accepts_the_bare_key_and_an_upper_case_digest(store: FsspecModelStore) -> None:
    stored = store.save(KEY, OLD)

    assert store.load(KEY, expected_sha256=stored.sha256.upper()) == OLD
    assert store.key_for(stored.uri) == KEY


@pytest.mark.parametrize("payload", [b"", b"\x00", bytes(range(256)) * 5000])
def test_round_trip_of_edge_payloads(store: FsspecModelStore, payload: bytes) -> None:
    stored = store.save("t/p/f/v000001.bin", payload)

    assert stored.size_bytes == len(payload)
    assert store.load(stored.uri, expected_sha256=sha(payload)) == payload


def test_saving_again_replaces_the_content(backend: Backend) -> None:
    store = backend.make(backup_enabled=False)
    store.save(KEY, OLD)
    stored = store.save(KEY, NEW)

    assert store.load(stored.uri, expected_sha256=sha(NEW)) == NEW
    with pytest.raises(ChecksumMismatch):
        store.load(stored.uri, expected_sha256=sha(OLD))


# -- checksum verification ----------------------------------------------------------
@pytest.mark.parametrize("offset", [0, len(OLD) // 2, len(OLD) - 1])
def test_a_tampered_artifact_is_refused_with_key_and_both_digests(
    store: FsspecModelStore, offset: int
) -> None:
    stored = store.save(KEY, OLD)
    flip_one_byte(store, stored.uri, offset=offset)
    tampered = bytearray(OLD)
    tampered[offset] ^= 0x01

    result: bytes | None = None
    with pytest.raises(ChecksumMismatch) as caught:
        result = store.load(stored.uri, expected_sha256=stored.sha256)

    assert result is None
    message = str(caught.value)
    assert stored.key in message
    assert store.root_uri not in message  # the server's path never reaches a client
    assert stored.sha256 in message
    assert sha(bytes(tampered)) in message
    assert isinstance(caught.value, ArtifactRefused)


def test_every_load_verifies_not_only_the_first(store: FsspecModelStore) -> None:
    stored = store.save(KEY, OLD)
    assert store.load(stored.uri, expected_sha256=stored.sha256) == OLD

    flip_one_byte(store, stored.uri)

    with pytest.raises(ChecksumMismatch):
        store.load(stored.uri, expected_sha256=stored.sha256)


def test_a_digest_recorded_for_other_content_is_refused(store: FsspecModelStore) -> None:
    stored = store.save(KEY, OLD)

    with pytest.raises(ChecksumMismatch):
        store.load(stored.uri, expected_sha256=sha(NEW))


@pytest.mark.parametrize("bad_digest", ["", "abc", "g" * 64, sha(OLD)[:-1], sha(OLD) + "0"])
def test_a_malformed_expected_digest_is_a_value_error(
    store: FsspecModelStore, bad_digest: str
) -> None:
    stored = store.save(KEY, OLD)

    with pytest.raises(ValueError, match="expected_sha256"):
        store.load(stored.uri, expected_sha256=bad_digest)


# -- missing artifacts and deletion -------------------------------------------------
def test_a_missing_artifact_raises_artifact_missing(store: FsspecModelStore) -> None:
    uri = store.uri_for(KEY)

    with pytest.raises(ArtifactMissing, match="does not exist") as caught:
        store.load(uri, expected_sha256=sha(OLD))

    assert KEY in str(caught.value)
    assert store.root_uri not in str(caught.value)
    assert not store.exists(uri)


def test_a_prefix_is_not_an_artifact(store: FsspecModelStore) -> None:
    store.save(KEY, OLD)

    assert not store.exists("acme/croissant")
    with pytest.raises(ArtifactMissing):
        store.load("acme/croissant", expected_sha256=sha(OLD))


def test_delete_removes_the_artifact_and_is_idempotent(store: FsspecModelStore) -> None:
    stored = store.save(KEY, OLD)
    other = store.save("acme/bread/prophet/v000001.json", NEW)

    assert store.delete(stored.uri) is True
    assert not store.exists(stored.uri)
    with pytest.raises(ArtifactMissing):
        store.load(stored.uri, expected_sha256=stored.sha256)
    assert store.delete(stored.uri) is False
    assert store.load(other.uri, expected_sha256=other.sha256) == NEW


# -- atomic writes ------------------------------------------------------------------
@pytest.mark.parametrize("backup_enabled", [True, False])
def test_a_crash_mid_write_leaves_the_previous_artifact_intact(
    backend: Backend, monkeypatch: pytest.MonkeyPatch, backup_enabled: bool
) -> None:
    store = backend.make(backup_enabled=backup_enabled)
    old = store.save(KEY, OLD)
    probe = backend.crash_while_writing(monkeypatch, store, NEW)

    with pytest.raises(SimulatedCrash):
        store.save(KEY, NEW)

    assert probe.triggered, "the injected crash did not happen; the test proves nothing"
    assert 0 < probe.bytes_written_before_crash < len(NEW)
    assert store.load(KEY, expected_sha256=old.sha256) == OLD
    # Nothing partial anywhere, and no backup of a replacement that never happened.
    assert store.list() == [old.uri]


def test_a_crash_on_the_first_write_leaves_nothing(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = backend.make()
    probe = backend.crash_while_writing(monkeypatch, store, NEW)

    with pytest.raises(SimulatedCrash):
        store.save(KEY, NEW)

    assert probe.triggered
    assert not store.exists(KEY)
    assert store.list() == []


def test_after_a_crash_the_next_save_succeeds(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = backend.make(backup_enabled=False)
    store.save(KEY, OLD)
    backend.crash_while_writing(monkeypatch, store, NEW)
    with pytest.raises(SimulatedCrash):
        store.save(KEY, NEW)
    monkeypatch.undo()

    stored = store.save(KEY, NEW)

    assert store.load(stored.uri, expected_sha256=sha(NEW)) == NEW
    assert store.list() == [stored.uri]


# -- backups ------------------------------------------------------------------------
def test_replacing_with_backups_enabled_keeps_the_old_artifact(backend: Backend) -> None:
    store = backend.make(backup_enabled=True)
    first = store.save(KEY, OLD)
    second = store.save(KEY, NEW)

    assert first.replaced_backup_uri is None
    assert second.replaced_backup_uri is not None
    backup_key = store.key_for(second.replaced_backup_uri)
    assert backup_key.startswith(f"{BACKUP_PREFIX}/{KEY}/")
    assert store.load(second.replaced_backup_uri, expected_sha256=first.sha256) == OLD
    assert store.load(KEY, expected_sha256=second.sha256) == NEW
    assert store.list(f"{BACKUP_PREFIX}/") == [second.replaced_backup_uri]


def test_a_backup_is_independent_of_the_live_artifact(backend: Backend) -> None:
    store = backend.make(backup_enabled=True)
    first = store.save(KEY, OLD)
    second = store.save(KEY, NEW)
    assert second.replaced_backup_uri is not None

    flip_one_byte(store, second.uri)

    assert store.load(second.replaced_backup_uri, expected_sha256=first.sha256) == OLD
    with pytest.raises(ChecksumMismatch):
        store.load(second.uri, expected_sha256=second.sha256)


def test_backups_of_one_key_list_in_time_order(backend: Backend) -> None:
    store = backend.make(backup_enabled=True)
    payloads = [f"version {i}".encode() for i in range(4)]
    results = [store.save(KEY, payload) for payload in payloads]

    backups = store.list(f"{BACKUP_PREFIX}/{KEY}/")

    assert backups == [r.replaced_backup_uri for r in results[1:]]
    for uri, payload in zip(backups, payloads[:-1], strict=True):
        assert store.load(uri, expected_sha256=sha(payload)) == payload


def test_replacing_with_backups_disabled_keeps_nothing(backend: Backend) -> None:
    store = backend.make(backup_enabled=False)
    store.save(KEY, OLD)
    second = store.save(KEY, NEW)

    assert second.replaced_backup_uri is None
    assert store.list(f"{BACKUP_PREFIX}/") == []
    assert store.list() == [second.uri]


def test_a_new_key_makes_no_backup(backend: Backend) -> None:
    store = backend.make(backup_enabled=True)
    store.save(KEY, OLD)
    other = store.save("acme/croissant/prophet/v000002.json", NEW)

    assert other.replaced_backup_uri is None
    assert store.list(f"{BACKUP_PREFIX}/") == []


def test_the_backup_prefix_cannot_be_saved_to(store: FsspecModelStore) -> None:
    with pytest.raises(ValueError, match="reserved"):
        store.save(f"{BACKUP_PREFIX}/{KEY}/20250101T000000000000Z", OLD)


# -- keys and uris ------------------------------------------------------------------
BAD_KEYS = [
    "",
    "/etc/passwd",
    "../outside",
    "acme/../../outside",
    "acme/./v1.json",
    "acme//v1.json",
    "acme/v1.json/",
    ".hidden/v1.json",
    "acme/.v1.json.tmp",
    "acme\\v1.json",
    "C:/models/v1.json",
    "acme/v 1.json",
    "acme/vé.json",
    "acme/-v1.json",
    "acme/v1.json;rm",
    "x" * 1025,
    "acme/" + "x" * 256,
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_unsafe_keys_are_refused_everywhere(store: FsspecModelStore, key: str) -> None:
    with pytest.raises(ValueError, match="key"):
        store.save(key, OLD)
    for call in (
        lambda: store.load(key, expected_sha256=sha(OLD)),
        lambda: store.exists(key),
        lambda: store.delete(key),
        lambda: store.uri_for(key),
    ):
        with pytest.raises(ValueError, match=r"key|not inside the model store"):
            call()
    assert store.list() == []


def test_a_uri_outside_the_store_is_refused(backend: Backend) -> None:
    store = backend.make()
    store.save(KEY, OLD)
    protocol = store.root_uri.split("://", 1)[0]
    foreign = [
        f"{protocol}://somewhere-else/{KEY}",
        store.root_uri + "-sibling/" + KEY,
        store.root_uri,
        "gopher://host/" + KEY,
    ]
    for uri in foreign:
        with pytest.raises(ValueError, match=r"not inside|key"):
            store.load(uri, expected_sha256=sha(OLD))
        with pytest.raises(ValueError, match=r"not inside|key"):
            store.exists(uri)


def test_uri_and_key_round_trip(store: FsspecModelStore) -> None:
    key = artifact_key("Bäckerei Jensen", "Franzbrötchen", "prophet", 12)

    assert store.key_for(store.uri_for(key)) == key
    assert store.key_for(key) == key


# -- listing ------------------------------------------------------------------------
def test_list_returns_sorted_uris_under_a_prefix(store: FsspecModelStore) -> None:
    keys = [
        "acme/croissant/prophet/v000002.json",
        "acme/croissant/prophet/v000001.json",
        "acme/bread/prophet/v000001.json",
        "acme2/bread/prophet/v000001.json",
        "other/bread/prophet/v000001.json",
    ]
    for key in keys:
        store.save(key, key.encode())

    def listed(prefix: str) -> list[str]:
        return [store.key_for(uri) for uri in store.list(prefix)]

    assert listed("") == sorted(keys)
    assert listed("acme/") == [
        "acme/bread/prophet/v000001.json",
        "acme/croissant/prophet/v000001.json",
        "acme/croissant/prophet/v000002.json",
    ]
    assert listed("acme") == sorted(keys[:4])  # a plain string prefix, as in S3
    assert listed("acme/cro") == sorted(keys[:2])
    assert listed("acme/croissant/prophet/v000001.json") == ["acme/croissant/prophet/v000001.json"]
    assert listed("nobody/") == []
    for uri in store.list():
        assert store.load(uri, expected_sha256=sha(store.key_for(uri).encode()))


def test_list_of_an_empty_store_is_empty(store: FsspecModelStore) -> None:
    assert store.list() == []
    assert store.list("acme/") == []


@pytest.mark.parametrize("prefix", ["/abs", "../up", "acme/../x", "a\\b"])
def test_list_refuses_unsafe_prefixes(store: FsspecModelStore, prefix: str) -> None:
    with pytest.raises(ValueError, match="key"):
        store.list(prefix)


# -- key rules shared by every store -------------------------------------------------
@pytest.mark.parametrize(
    "key",
    ["a", "acme/croissant/prophet/v000001.json", "_x/y-z/1.2.3", "A/B/c_d.bin", "t/p/f/v1"],
)
def test_safe_keys_pass_validation_unchanged(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize("key", BAD_KEYS)
def test_validate_key_refuses_with_a_message_naming_the_key(key: str) -> None:
    with pytest.raises(ValueError, match="key"):
        validate_key(key)


def test_artifact_key_is_stable_readable_and_safe() -> None:
    key = artifact_key("Bäckerei Jensen", "Franzbrötchen (groß)", "prophet", 3)

    assert key == artifact_key("Bäckerei Jensen", "Franzbrötchen (groß)", "prophet", 3)
    tenant, product, family, file_name = key.split("/")
    assert tenant.startswith("backerei-jensen-")
    assert product.startswith("franzbrotchen-gross-")
    assert family == "prophet"
    assert file_name == "v000003.json"
    assert validate_key(key) == key


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Brot Weiß", "Brot/Weiß"),
        ("Croissant", "croissant"),
        ("../../etc", "etc"),
        ("🥐", "🥖"),
    ],
)
def test_artifact_key_keeps_distinct_product_names_apart(first: str, second: str) -> None:
    assert artifact_key("acme", first, "prophet", 1) != artifact_key("acme", second, "prophet", 1)


@pytest.mark.parametrize("product", ["../../etc/passwd", "/abs", "a\\b", "..", "🥐", "x" * 500])
def test_artifact_key_sanitises_hostile_product_names(product: str) -> None:
    key = artifact_key("acme", product, "prophet", 1)

    assert validate_key(key) == key
    assert key.count("/") == 3
    assert ".." not in key.split("/")


def test_artifact_key_versions_sort_as_text() -> None:
    keys = [artifact_key("acme", "bread", "prophet", v) for v in (1, 2, 10, 100)]

    assert keys == sorted(keys)


@pytest.mark.parametrize(
    ("tenant", "product", "family", "version"),
    [
        ("acme", "bread", "prophet", 0),
        ("acme", "bread", "prophet", -1),
        ("acme", "bread", "prophet", True),
        ("acme", "bread", "../x", 1),
        ("acme", "bread", "", 1),
        ("", "bread", "prophet", 1),
        ("acme", "  ", "prophet", 1),
    ],
)
def test_artifact_key_refuses_invalid_parts(
    tenant: str, product: str, family: str, version: int
) -> None:
    with pytest.raises(ValueError, match=r"version|family|names|component"):
        artifact_key(tenant, product, family, version)


def test_sha256_hex_matches_hashlib() -> None:
    assert sha256_hex(b"abc") == hashlib.sha256(b"abc").hexdigest()
