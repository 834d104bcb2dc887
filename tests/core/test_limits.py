"""Size limits at the ASGI edge (app/core/limits.py): before authentication, before a body
is read whole, over a real socket to a real uvicorn."""

import asyncio
import json

import httpx

from tests.support.apps import live_server, make_settings

BIG = 64 * 1024 * 1024


async def raw_exchange(base_url: str, head: bytes, body_chunks: tuple[bytes, ...] = ()) -> bytes:
    """Send `head` (and maybe some body), then read whatever the server answers."""
    host, port = base_url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head)
        for chunk in body_chunks:
            writer.write(chunk)
            await writer.drain()
        await writer.drain()
        return await asyncio.wait_for(reader.read(65536), timeout=10)
    finally:
        writer.close()


async def test_a_declared_oversized_body_is_refused_before_it_is_sent(database_url: str) -> None:
    async with live_server(make_settings(database_url)) as base:
        for path in ("/api/videos", "/api/webhooks/fal", "/api/admin/credits", "/api/uploads"):
            head = (
                f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                f"Content-Length: {BIG}\r\n\r\n"
            ).encode()
            answer = await raw_exchange(base, head)  # not one byte of the body was sent
            status_line, _, rest = answer.partition(b"\r\n")
            assert b" 413 " in status_line, (path, answer[:300])
            body = json.loads(rest.split(b"\r\n\r\n", 1)[1])
            assert body["code"] == "payload_too_large"


async def test_a_chunked_body_is_cut_off_once_it_passes_the_limit(database_url: str) -> None:
    settings = make_settings(database_url, max_json_body_bytes=1024)
    async with live_server(settings) as base:
        head = (
            b"POST /api/videos HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"400\r\n" + b"x" * 1024 + b"\r\n"
        answer = await raw_exchange(base, head, (chunk, chunk))
        assert b" 413 " in answer.partition(b"\r\n")[0], answer[:300]


async def test_bodies_within_the_limit_pass_and_the_limit_is_per_route(database_url: str) -> None:
    settings = make_settings(database_url, max_json_body_bytes=2048)
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base) as client:
        small = await client.post("/api/videos", content=b"{}" + b" " * 1000)
        big = await client.post("/api/videos", content=b"{}" + b" " * 4000)
        hook = await client.post("/api/webhooks/fal", content=b"{}" + b" " * 4000)
    assert small.status_code == 401  # reached authentication
    assert big.status_code == 413 and big.json()["code"] == "payload_too_large"
    assert hook.status_code == 401  # the webhook's own limit (1 MiB); unsigned: 401


async def test_too_many_or_too_large_headers_are_431(database_url: str) -> None:
    settings = make_settings(database_url, max_header_count=50, max_header_bytes=8192)
    async with live_server(settings) as base, httpx.AsyncClient(base_url=base) as client:
        many = await client.get("/api/health", headers={f"x-h{i}": "1" for i in range(60)})
        large = await client.get("/api/health", headers={"x-big": "y" * 9000})
        fine = await client.get("/api/health", headers={f"x-h{i}": "1" for i in range(20)})
    assert many.status_code == 431 and many.json()["code"] == "request_header_fields_too_large"
    assert large.status_code == 431
    assert fine.status_code == 200
