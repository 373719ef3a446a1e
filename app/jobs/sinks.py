"""Where batch results go. Each write is all-or-nothing and idempotent: the object name comes
from the batch id, so writing the same batch again replaces it instead of adding a copy.

Local: written to a temporary name in the same directory, fsynced, then renamed. S3: a single
PUT, which S3 makes visible only once complete (no partial object is ever readable).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import pyarrow as pa


def encode(table: pa.Table, fmt: str) -> bytes:
    import pyarrow.csv as pacsv  # lazy: see app/jobs/sources.py
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    if fmt == "parquet":
        pq.write_table(table, buffer)
    else:
        pacsv.write_csv(table, buffer)
    return buffer.getvalue()


class Sink(Protocol):
    def write(self, name: str, data: bytes) -> str:
        """Store ``data`` under ``name`` atomically; return where it went."""


class LocalSink:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def write(self, name: str, data: bytes) -> str:
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / name
        tmp = self.directory / f".tmp-{name}"
        try:
            with open(tmp, "wb") as handle:
                self._write_all(handle, data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return str(final)

    @staticmethod
    def _write_all(handle: Any, data: bytes) -> None:
        """Write in pieces, so an interruption really leaves a half-written temporary file."""
        view = memoryview(data)
        for start in range(0, len(view), 1 << 20):
            handle.write(view[start : start + (1 << 20)])


class S3Sink:
    def __init__(self, bucket: str, prefix: str, endpoint_url: str = "") -> None:
        import boto3  # only when S3 is configured

        self.bucket, self.prefix = bucket, prefix
        self.client = boto3.client("s3", endpoint_url=endpoint_url or None)

    def write(self, name: str, data: bytes) -> str:
        key = f"{self.prefix}{name}"
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)
        return f"s3://{self.bucket}/{key}"
