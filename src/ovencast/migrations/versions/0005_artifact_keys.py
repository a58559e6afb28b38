"""model artifacts referenced by their key relative to the model store

`model_versions.artifact_uri` held absolute URIs (`file:///home/me/.ovencast/models/...`):
an embedded home copied or moved elsewhere found none of its artifacts. Rows now hold
`artifact_key`, the key inside MODEL_STORAGE_PATH; likewise `training_jobs.global_models`
holds `key` instead of `uri`. Every key ovencast wrote has four components,
`<tenant>/<product>/<family>/<file>` (store/base.artifact_key), so the key of an old
URI is its last four path components.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEY_COMPONENTS = 4

versions = sa.table("model_versions", sa.column("id", sa.Integer),
                    sa.column("artifact_uri", sa.String), sa.column("artifact_key", sa.String))
jobs = sa.table("training_jobs", sa.column("id", sa.Integer),
                sa.column("global_models", sa.JSON))


def key_of(uri: str) -> str:
    path = uri.split("://", 1)[-1]
    return "/".join(path.rstrip("/").split("/")[-KEY_COMPONENTS:])


def _renamed(record: dict[str, Any], old: str, new: str, convert: Any) -> dict[str, Any]:
    out = {k: v for k, v in record.items() if k != old}
    out[new] = convert(record[old])
    return out


def _rewrite_global_models(old: str, new: str, convert: Any) -> None:
    connection = op.get_bind()
    for job_id, record in connection.execute(sa.select(jobs.c.id, jobs.c.global_models)):
        if isinstance(record, dict) and old in record:
            connection.execute(jobs.update().where(jobs.c.id == job_id).values(
                global_models=_renamed(record, old, new, convert)))


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("artifact_key", sa.String(length=1000), nullable=True))
    connection = op.get_bind()
    for row_id, uri in connection.execute(sa.select(versions.c.id, versions.c.artifact_uri)):
        connection.execute(versions.update().where(versions.c.id == row_id).values(
            artifact_key=key_of(uri)))
    with op.batch_alter_table("model_versions") as batch:
        batch.alter_column("artifact_key", existing_type=sa.String(length=1000),
                           nullable=False)
        batch.drop_column("artifact_uri")
    _rewrite_global_models("uri", "key", key_of)


def downgrade() -> None:
    # The store's root is not known here; a bare key is what the store accepts as a uri.
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("artifact_uri", sa.String(length=1000), nullable=True))
    connection = op.get_bind()
    connection.execute(versions.update().values(artifact_uri=versions.c.artifact_key))
    with op.batch_alter_table("model_versions") as batch:
        batch.alter_column("artifact_uri", existing_type=sa.String(length=1000),
                           nullable=False)
        batch.drop_column("artifact_key")
    _rewrite_global_models("key", "uri", str)
