"""Train -> forecast -> tamper with the models on S3 (moto's server on loopback): the
products are trained in the pool's worker processes, which reach the server through
MODEL_STORAGE_OPTIONS like any deployment; a forecast loads the artifacts back, checksum
verified; an artifact changed in the bucket is refused (and counted), the other products
are still forecast."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from prometheus_client import REGISTRY

from conftest import import_directory, make_settings, train_in_process
from ovencast.db.runtime import Database
from ovencast.db.session import unit_of_work
from ovencast.errors import ChecksumMismatch
from ovencast.forecasts.service import forecast_tenant
from ovencast.tenants import service as tenants_service

from .s3_server import S3Server

PRODUCTS = ("bread", "rolls")


def _checksum_failures() -> float:
    return REGISTRY.get_sample_value("ovencast_checksum_failures_total") or 0.0


async def test_train_forecast_and_a_tampered_artifact_on_s3(
        s3_server: S3Server, tmp_path: Path, sqlite_url: str,
        tiny_dataset: Callable[..., Path]) -> None:
    bucket = s3_server.new_bucket()
    settings = make_settings(tmp_path / "home", sqlite_url,
                             model_storage_path=f"s3://{bucket}/models",
                             model_storage_options=s3_server.storage_options())
    database = Database.open(settings)
    try:
        await database.ready()
        await import_directory(database, "acme", tiny_dataset(PRODUCTS, days=90))
        trained = await train_in_process(database, "acme", models=("seasonal_naive",))
        assert {p: r.status for p, r in trained.runs.items()} == dict.fromkeys(
            PRODUCTS, "trained")

        s3 = s3_server.client()
        objects = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
        assert len(objects) == len(PRODUCTS), objects
        assert all(key.startswith("models/acme") for key in objects), objects

        async with unit_of_work(database.sessions) as session:
            tenant = await tenants_service.get_tenant(session, "acme")
            first = await forecast_tenant(session, tenant, settings=settings, days=7)
        assert first.refused == []
        assert sorted(set(first.forecast["product"])) == list(PRODUCTS)

        bread_key = next(key for key in objects if "bread" in key)
        body = bytearray(s3.get_object(Bucket=bucket, Key=bread_key)["Body"].read())
        body[len(body) // 2] ^= 0x01
        s3.put_object(Bucket=bucket, Key=bread_key, Body=bytes(body))
        before = _checksum_failures()

        async with unit_of_work(database.sessions) as session:
            tenant = await tenants_service.get_tenant(session, "acme")
            second = await forecast_tenant(session, tenant, settings=settings, days=7)
    finally:
        await database.close()

    assert [(r.product, r.error_kind) for r in second.refused] == [
        ("bread", ChecksumMismatch)]
    assert set(second.forecast["product"]) == {"rolls"}
    assert _checksum_failures() == before + 1
