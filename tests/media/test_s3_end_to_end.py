"""The whole service with MEDIA_BACKEND=s3 against moto's S3 server: a job's output is copied
into the bucket, handed out as presigned URLs on the bucket's endpoint, and deleted from it."""

import hashlib
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from app.fal.simulator.media import SAMPLE_PATH
from app.fal.simulator.process import SimulatorProcess
from tests.media.conftest import S3Target
from tests.support.apps import AppProcess
from tests.support.factories import create_user
from tests.support.jobs import create, finished


def bucket_keys(s3_client: Any, bucket: str) -> dict[str, int]:
    contents = s3_client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: item["Size"] for item in contents}


async def test_an_output_goes_to_the_bucket_is_served_from_it_and_deleted_from_it(
    database_url: str,
    simulator: SimulatorProcess,
    tmp_path: Path,
    s3_target: S3Target,
    s3_client: Any,
    db: asyncpg.Connection,
) -> None:
    sample = SAMPLE_PATH.read_bytes()
    app = AppProcess(database_url, simulator, tmp_path, **s3_target.env()).start()
    try:
        async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
            user = await create_user(client, credits=1000)
            video = await finished(client, user, (await create(client, user))["id"])
            stored = bucket_keys(s3_client, s3_target.bucket)
            served = await client.get(video["video"]["url"])
            poster = await client.get(video["video"]["poster_url"])
            ranged = await client.get(video["video"]["url"], headers={"Range": "bytes=0-99"})
            key = httpx.URL(video["video"]["url"]).path.removeprefix(f"/{s3_target.bucket}/")
            local = await client.get(f"/media/{key}")

            deleted = await client.delete(f"/api/videos/{video['id']}", headers=user.auth)
            after = (await client.get(f"/api/videos/{video['id']}", headers=user.auth)).json()
            gone = await client.get(video["video"]["url"])
    finally:
        app.stop()

    assert video["status"] == "completed", video
    prefix = f"{s3_target.endpoint}/{s3_target.bucket}/videos/{video['id']}/"
    for url in (video["video"]["url"], video["video"]["poster_url"]):
        assert url.startswith(prefix), url  # the bucket's, not Fal's (the simulator's) nor /media
        assert "X-Amz-Signature=" in url
    assert not video["video"]["url"].startswith((simulator.base_url, app.url))
    poster_key = httpx.URL(video["video"]["poster_url"]).path.removeprefix(f"/{s3_target.bucket}/")
    assert stored == {key: len(sample), poster_key: len(poster.content)}
    assert served.status_code == 200
    assert served.content == sample
    assert served.headers["content-type"] == "video/mp4"
    assert video["video"]["sha256"] == hashlib.sha256(sample).hexdigest()
    assert video["video"]["size_bytes"] == len(sample)
    assert poster.status_code == 200
    assert poster.headers["content-type"] == "image/jpeg"
    assert poster.content.startswith(b"\xff\xd8\xff")
    assert ranged.status_code == 206 and ranged.content == sample[:100]
    assert local.status_code == 404  # the app serves no media with this backend

    assert deleted.status_code == 204
    assert bucket_keys(s3_client, s3_target.bucket) == {}
    assert gone.status_code == 404
    assert after["status"] == "completed"
    assert after["video"] is None
    assert after["media_deleted_at"] is not None
    row = await db.fetchrow(
        'SELECT "mediaKey", "mediaDeletedAt" FROM videos WHERE id = $1', uuid.UUID(video["id"])
    )
    assert row is not None and row["mediaKey"] == key and row["mediaDeletedAt"] is not None
