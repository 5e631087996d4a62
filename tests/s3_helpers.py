"""An S3-compatible endpoint over real HTTP for tests: moto's server mode in a subprocess.

`moto_s3()` starts `moto_server` on a free loopback port, creates the bucket and stops the
server afterwards. The adapter reaches it like any object store: through its `[blobs]`
configuration and boto3, with the key pair in the environment variables it names.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import boto3

from tests.conftest import free_port

BUCKET = "dk-adapter-test"
ACCESS_KEY_ENV, SECRET_KEY_ENV = "DK_TEST_S3_ACCESS_KEY", "DK_TEST_S3_SECRET_KEY"
# moto accepts any key pair; these stand for the ones an operator would put in the environment.
CREDENTIALS = {ACCESS_KEY_ENV: "testing-access-key", SECRET_KEY_ENV: "testing-secret-key"}


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    bucket: str

    def toml(self, prefix: str = "") -> str:
        """The `[blobs]` section of an adapter.toml that uses this endpoint."""
        return (
            "[blobs]\n"
            'store = "s3"\n'
            f'endpoint_url = "{self.url}"\n'
            f'bucket = "{self.bucket}"\n'
            'region = "us-east-1"\n'
            f'prefix = "{prefix}"\n'
            f'access_key_env = "{ACCESS_KEY_ENV}"\n'
            f'secret_key_env = "{SECRET_KEY_ENV}"\n'
        )

    def client(self):  # type: ignore[no-untyped-def]
        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id=CREDENTIALS[ACCESS_KEY_ENV],
            aws_secret_access_key=CREDENTIALS[SECRET_KEY_ENV],
        )

    def object_names(self) -> list[str]:
        """Every object name in the bucket."""
        names: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            names += [item["Key"] for item in page.get("Contents", [])]
        return names


def _moto_server() -> str:
    # The console script sits beside the interpreter in the virtual environment.
    beside = Path(sys.executable).parent / "moto_server"
    return str(beside) if beside.exists() else "moto_server"


@contextmanager
def moto_s3(log: Path, bucket: str = BUCKET) -> Iterator[S3Endpoint]:
    """moto's S3 on 127.0.0.1 with `bucket` created; stopped however the block ends."""
    port = free_port()
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [_moto_server(), "-H", "127.0.0.1", "-p", str(port)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited:\n{log.read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto_server did not listen:\n{log.read_text()}") from None
                time.sleep(0.05)
        endpoint = S3Endpoint(f"http://127.0.0.1:{port}", bucket)
        endpoint.client().create_bucket(Bucket=bucket)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
