"""HTTP endpoints of datasets: upload the CSV files of a dataset directory.

The upload is parsed by the same reader as `ovencast import`, so the rules and messages
are the same; a bad cell rejects the whole upload (422 naming file, line and column) and
nothing is stored."""

from __future__ import annotations

import asyncio
from typing import IO, Annotated

from fastapi import APIRouter, File, Form, UploadFile, status

from ovencast.api.dependencies import Session, SettingsDep, tenant_access
from ovencast.api.errors import ACCESS_ERRORS, error_responses
from ovencast.datasets import service
from ovencast.datasets.history import ImportMode
from ovencast.datasets.reader import (
    REGRESSOR_FILES,
    SALES_FILE,
    DataLimits,
    parse_dataset_files,
)
from ovencast.datasets.schemas import DatasetImportOut
from ovencast.datasets.service import ImportSummary
from ovencast.keys.roles import Role
from ovencast.tenants import service as tenants_service

router = APIRouter(tags=["datasets"], responses=ACCESS_ERRORS)

@router.post(
    "/tenants/{tenant}/datasets", status_code=status.HTTP_201_CREATED,
    response_model=DatasetImportOut, summary="Upload a dataset (multipart CSV files)",
    description="Form fields `sales` (required; `date,product,quantity`) and optionally "
                "`weather`, `traffic`, `calendar` (`date` plus numeric columns). `mode`: "
                "`merge` (default) inserts or updates exactly the uploaded (product, date) "
                "and (column, date) rows; `replace` makes the history of each uploaded "
                "product and column exactly the upload. What an upload changes is kept in "
                "the import history (`ovencast imports`).",
    responses=error_responses(404, 413, 422), dependencies=[tenant_access(Role.TRAIN)])
async def upload_dataset(
    tenant: str,
    session: Session,
    sales: Annotated[UploadFile, File(description=SALES_FILE)],
    weather: Annotated[UploadFile | None, File(description="weather.csv")] = None,
    traffic: Annotated[UploadFile | None, File(description="traffic.csv")] = None,
    calendar: Annotated[UploadFile | None, File(description="calendar.csv")] = None,
    mode: Annotated[ImportMode, Form(description="merge (default) or replace")
                    ] = ImportMode.MERGE,
    *, settings: SettingsDep,
) -> ImportSummary:
    row = await tenants_service.get_tenant(session, tenant)
    uploads = {SALES_FILE: sales, "weather.csv": weather, "traffic.csv": traffic,
               "calendar.csv": calendar}
    assert set(uploads) == {SALES_FILE, *REGRESSOR_FILES}
    # The upload's size was limited while it streamed in (api/body_limit.py,
    # MAX_UPLOAD_BYTES); Starlette spooled each file, and the reader streams them from
    # there: memory holds the parsed rows, never a file's text. CPU-bound for large
    # files, so off the event loop.
    files: dict[str, IO[bytes]] = {name: upload.file for name, upload in uploads.items()
                                   if upload is not None}
    dataset = await asyncio.to_thread(parse_dataset_files, files,
                                      limits=DataLimits.from_settings(settings))
    source = "http upload: " + ", ".join(
        f"{name}={upload.filename or '-'}" for name, upload in uploads.items()
        if upload is not None)
    return await service.import_dataset(session, row, dataset, source=source[:500],
                                        mode=mode)
