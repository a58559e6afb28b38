"""HTTP endpoints of datasets: upload the CSV files of a dataset directory.

The upload is parsed by the same reader as `ovencast import`, so the rules and messages
are the same; a bad cell rejects the whole upload (422 naming file, line and column) and
nothing is stored."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, File, UploadFile, status

from ovencast.api.dependencies import Session
from ovencast.api.errors import error_responses
from ovencast.datasets import service
from ovencast.datasets.reader import REGRESSOR_FILES, SALES_FILE, parse_dataset
from ovencast.datasets.schemas import DatasetImportOut
from ovencast.datasets.service import ImportSummary
from ovencast.errors import InvalidDataset, PayloadTooLarge
from ovencast.tenants import service as tenants_service

router = APIRouter(tags=["datasets"])

# Per file. Years of daily sales of a few hundred products stay far below this.
MAX_UPLOAD_BYTES = 64 * 1024 * 1024


async def _text(upload: UploadFile, file_name: str) -> str:
    payload = await upload.read(MAX_UPLOAD_BYTES + 1)
    if len(payload) > MAX_UPLOAD_BYTES:
        raise PayloadTooLarge(f"{file_name} is larger than {MAX_UPLOAD_BYTES} bytes")
    try:
        return payload.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidDataset(f"{file_name} is not UTF-8 text (byte {exc.start})") from None


@router.post(
    "/tenants/{tenant}/datasets", status_code=status.HTTP_201_CREATED,
    response_model=DatasetImportOut, summary="Upload a dataset (multipart CSV files)",
    description="Form fields `sales` (required; `date,product,quantity`) and optionally "
                "`weather`, `traffic`, `calendar` (`date` plus numeric columns). Overlapping "
                "dates replace what was stored before (idempotent).",
    responses=error_responses(404, 413, 422))
async def upload_dataset(
    tenant: str,
    session: Session,
    sales: Annotated[UploadFile, File(description=SALES_FILE)],
    weather: Annotated[UploadFile | None, File(description="weather.csv")] = None,
    traffic: Annotated[UploadFile | None, File(description="traffic.csv")] = None,
    calendar: Annotated[UploadFile | None, File(description="calendar.csv")] = None,
) -> ImportSummary:
    row = await tenants_service.get_tenant(session, tenant)
    uploads = {SALES_FILE: sales, "weather.csv": weather, "traffic.csv": traffic,
               "calendar.csv": calendar}
    assert set(uploads) == {SALES_FILE, *REGRESSOR_FILES}
    texts = {name: await _text(upload, name) for name, upload in uploads.items()
             if upload is not None}
    # CPU-bound for large files: keep the event loop free.
    dataset = await asyncio.to_thread(parse_dataset, texts)
    source = "http upload: " + ", ".join(
        f"{name}={upload.filename or '-'}" for name, upload in uploads.items()
        if upload is not None)
    return await service.import_dataset(session, row, dataset, source=source[:500])
