"""The media tests' fixtures: moto's standalone S3 server as a child process, a fresh
bucket per test, and the two stores built from `Settings` the way the app builds them."""

import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from app.core.config import MediaBackend, Settings
from app.media.store import S3MediaStore, open_store
from app.ops.localpg import free_port
from tests.support.apps import make_settings

MOTO_SERVER = str(Path(sys.executable).parent / "moto_server")
S3_REGION = "us-east-1"
S3_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
# The app's own test settings: every URL the local store signs is on the in-process client.
LOCAL_BASE_URL = "http://test"
SIGNING_KEY = "media-test-signing-key-0123456789"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's S3 server over real HTTP on 127.0.0.1; yields its endpoint URL."""
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    log = Path(tempfile.mkdtemp(prefix="vidgen-test-moto-")) / "moto.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [MOTO_SERVER, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto_server exited: {log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{endpoint}/moto-api/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"moto_server did not answer: {log.read_text()[-3000:]}")
            time.sleep(0.05)  # waiting for a server to come up, not synchronising a test
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def s3_client(s3_server: str) -> Any:
    """A boto3 client on the moto server: the tests' independent view of the bucket."""
    return boto3.client("s3", endpoint_url=s3_server, region_name=S3_REGION, **S3_CREDENTIALS)


@pytest.fixture
def s3_bucket(s3_client: Any) -> Iterator[str]:
    """A fresh, empty bucket for one test, emptied and removed after it."""
    name = f"media-{uuid.uuid4().hex[:16]}"
    s3_client.create_bucket(Bucket=name)
    yield name
    for upload in s3_client.list_multipart_uploads(Bucket=name).get("Uploads", []):
        s3_client.abort_multipart_upload(
            Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
        )
    for item in s3_client.list_objects_v2(Bucket=name).get("Contents", []):
        s3_client.delete_object(Bucket=name, Key=item["Key"])
    s3_client.delete_bucket(Bucket=name)


@dataclass(frozen=True)
class S3Target:
    endpoint: str
    bucket: str

    def env(self) -> dict[str, str]:
        """The service's environment for this bucket (`AppProcess(**env)`)."""
        return {
            "MEDIA_BACKEND": "s3",
            "S3_BUCKET": self.bucket,
            "S3_ENDPOINT_URL": self.endpoint,
            "S3_REGION": S3_REGION,
            "AWS_ACCESS_KEY_ID": S3_CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": S3_CREDENTIALS["aws_secret_access_key"],
        }


@pytest.fixture
def s3_target(s3_server: str, s3_bucket: str) -> S3Target:
    return S3Target(s3_server, s3_bucket)


@pytest.fixture
def s3_settings(database_url: str, s3_target: S3Target, tmp_path: Path) -> Settings:
    return make_settings(
        database_url,
        media_backend="s3",
        media_dir=tmp_path / "s3-staging",
        s3_bucket=s3_target.bucket,
        s3_endpoint_url=s3_target.endpoint,
        s3_region=S3_REGION,
        **S3_CREDENTIALS,
    )


@pytest.fixture
def s3_store(s3_settings: Settings) -> S3MediaStore:
    store = open_store(s3_settings)
    assert isinstance(store, S3MediaStore)
    return store


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """The app of these tests (`app`, `client`): local media under this test's own directory,
    signed for the in-process client's base URL."""
    settings = make_settings(
        database_url,
        media_dir=tmp_path / "media",
        media_signing_key=SIGNING_KEY,
        public_base_url=LOCAL_BASE_URL,
    )
    assert settings.media_backend is MediaBackend.LOCAL
    return settings
