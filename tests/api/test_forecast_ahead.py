"""`GET /api/v1/tenants/{t}/forecasts` for the days ahead on PostgreSQL: all of North Sea
uploaded over HTTP and trained, then the two weeks after its last sales date."""

from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
import pytest

from ovencast.settings import Settings
from ovencast.training.embedded import train_tenant

from .conftest import dataset_files

pytestmark = pytest.mark.postgres

TENANT = "northsea"


def test_two_weeks_ahead_with_every_fallback_said(client: httpx.Client,
                                                  api_settings: Settings,
                                                  northsea_dir: Path) -> None:
    assert client.post("/api/v1/tenants", json={"name": TENANT, "country": "DE",
                                                "subdivision": "NI"}).status_code == 201
    upload = client.post(f"/api/v1/tenants/{TENANT}/datasets",
                         files=dataset_files(northsea_dir))
    assert upload.status_code == 201, upload.text
    trained = train_tenant(api_settings, TENANT)
    assert trained.every_accepted_product_trained

    response = client.get(f"/api/v1/tenants/{TENANT}/forecasts", params={"days": 14})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["start"] == "2023-11-01"
    assert body["last_sales_date"] == "2023-10-31"
    assert body["errors"] == []
    rows = pd.DataFrame(body["rows"])
    assert rows["product"].nunique() == 21
    for _, product_rows in rows.groupby("product"):
        assert list(product_rows["date"]) == [
            str(d.date()) for d in pd.date_range("2023-11-01", periods=14)]
    assert set(rows["weekday"][:7]) == {"Monday", "Tuesday", "Wednesday", "Thursday",
                                        "Friday", "Saturday", "Sunday"}
    filled = {span["regressor"]: span["source"] for span in body["fallbacks"]}
    assert filled["temperature_c"] == "climatology"
    assert filled["guests"] == "seasonal_profile"
    assert all(span["dates"] == ["2023-11-01..2023-11-14"] for span in body["fallbacks"])
    with_weather = rows.loc[rows["fallback_regressors"].map(lambda r: "temperature_c" in r)]
    assert not with_weather.empty
    assert with_weather["note"].str.startswith("fallback: ").all()
    assert any("assumed open" in note for note in body["notes"])
