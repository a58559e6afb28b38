"""What S3 adds to the store contract (which `test_store_contract.py` runs on S3 too):
several processes share one bucket, and the probe that `/ready` and `ovencast db check`
use. Against moto's S3 server on loopback (`s3_server.py`)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ovencast.errors import Misconfigured
from ovencast.settings import Settings
from ovencast.store import FsspecModelStore, store_for
from ovencast.store.probe import StoreProbe, check_store

from .s3_server import S3Server

PAYLOAD = b"a model " * 100


def _fresh_filesystem(server: S3Server, url: str) -> FsspecModelStore:
    """A store with a filesystem object of its own, as another process would have."""
    return FsspecModelStore(url, storage_options={**server.storage_options(),
                                                  "skip_instance_cache": True})


def test_an_artifact_saved_by_another_process_is_seen_after_a_listing(
        s3_server: S3Server) -> None:
    """A worker lists the store, another worker saves an artifact: the first one sees
    it. (With fsspec's listings cache on, `exists` answered from the old listing.)"""
    url = f"s3://{s3_server.new_bucket()}/models"
    reader, writer = _fresh_filesystem(s3_server, url), _fresh_filesystem(s3_server, url)
    assert reader.fs is not writer.fs
    reader.save("acme/bread/prophet/v000001.json", PAYLOAD)
    assert len(reader.list("acme/")) == 1

    stored = writer.save("acme/bread/prophet/v000002.json", PAYLOAD)

    assert reader.exists(stored.key)
    assert reader.list("acme/") == [reader.uri_for("acme/bread/prophet/v000001.json"),
                                    stored.uri]


def test_store_for_takes_the_storage_options_from_the_settings(
        s3_server: S3Server, tmp_path: Path) -> None:
    bucket = s3_server.new_bucket()
    settings = Settings(ovencast_home=tmp_path, model_storage_path=f"s3://{bucket}/models",
                        model_storage_options=s3_server.storage_options())
    stored = store_for(settings).save("acme/bread/prophet/v000001.json", PAYLOAD)

    listed = s3_server.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [item["Key"] for item in listed] == [f"models/{stored.key}"]


def test_the_storage_options_are_read_from_the_environment_as_json(
        s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_STORAGE_OPTIONS", s3_server.storage_options_json())
    assert Settings().model_storage_options == s3_server.storage_options()


def test_an_unknown_protocol_package_is_misconfigured_not_a_traceback() -> None:
    with pytest.raises(Misconfigured, match="model storage"):
        FsspecModelStore("gs://bucket/models")


# -- the probe --------------------------------------------------------------------
def test_the_probe_finds_a_bucket_writable_and_leaves_nothing(s3_server: S3Server) -> None:
    bucket = s3_server.new_bucket()
    store = FsspecModelStore(f"s3://{bucket}/models",
                             storage_options=s3_server.storage_options())

    check = check_store(store)

    assert check.ok, check.detail
    assert check.detail == "writable"
    assert check.uri == f"s3://{bucket}/models"
    assert "Contents" not in s3_server.client().list_objects_v2(Bucket=bucket)


def test_the_probe_says_a_missing_bucket_cannot_be_written(s3_server: S3Server) -> None:
    store = FsspecModelStore("s3://no-such-bucket-ovencast/models",
                             storage_options=s3_server.storage_options())

    check = check_store(store)

    assert not check.ok
    assert check.detail.startswith("write failed: "), check.detail


def test_the_probe_says_an_unreachable_server_cannot_be_written() -> None:
    with socket.socket() as sock:  # a port with nothing listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    store = FsspecModelStore("s3://bucket/models", storage_options={
        "endpoint_url": f"http://127.0.0.1:{port}", "key": "k", "secret": "s",
        "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}},
        "retries": 1})

    check = check_store(store)

    assert not check.ok
    assert check.detail.startswith("write failed: "), check.detail


def test_the_probe_never_keeps_a_bad_answer_and_keeps_a_good_one(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.write_text("a file where the store's directory should be")
    probe = StoreProbe(FsspecModelStore(root), ttl_s=3600)
    assert not probe.check().ok

    root.unlink()  # repaired: seen at the next check, the bad answer was not kept
    assert probe.check().ok

    root.rename(tmp_path / "elsewhere")  # broken again, but a good answer is kept
    root.write_text("a file again")
    assert probe.check().ok
