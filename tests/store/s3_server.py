"""An S3 server on loopback for the store tests: moto's server mode (a real HTTP server
speaking the S3 API, as s3fs's own tests use), reached by s3fs through
`MODEL_STORAGE_OPTIONS`-style storage options. Nothing is mocked in the client: every
save is an HTTP PUT to the server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
# moto accepts any credentials; these never reach a real AWS account (no endpoint of it
# is ever named).
ACCESS_KEY = "testing"
SECRET_KEY = "testing"


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str

    def storage_options(self) -> dict[str, Any]:
        """What MODEL_STORAGE_OPTIONS holds for this server (s3fs arguments)."""
        return {"endpoint_url": self.endpoint_url, "key": ACCESS_KEY, "secret": SECRET_KEY,
                "client_kwargs": {"region_name": REGION}}

    def storage_options_json(self) -> str:
        return json.dumps(self.storage_options())

    def client(self) -> Any:
        """A boto3 client of the server: how a test looks at (or tampers with) objects
        from outside ovencast."""
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=REGION,
                            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def new_bucket(self) -> str:
        name = f"ovencast-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@contextmanager
def running_s3_server() -> Iterator[S3Server]:
    """moto's threaded server on 127.0.0.1, an ephemeral port."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()
