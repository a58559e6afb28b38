"""`Role`: what an API key may do, one StrEnum shared by the table (CHECK constraint),
the services, the CLI and the docs."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """Each role includes the ones before it: `read` may GET; `train` may also upload
    datasets, submit and cancel training jobs and activate model versions; `admin` may
    do all of that and, on a key without tenant, register tenants."""

    READ = "read"
    TRAIN = "train"
    ADMIN = "admin"

    def includes(self, other: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(other)
