"""The page's files: served same-origin under a strict Content-Security-Policy, and nothing else
under /playground; in no OpenAPI document."""

import re

import httpx

from app.playground.router import STATIC_DIR


async def test_the_page_and_its_assets_are_served_with_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/playground")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy
    assert "script-src 'self';" in policy
    assert "style-src 'self';" in policy
    assert "frame-ancestors 'none'" in policy
    assert page.headers["x-content-type-options"] == "nosniff"
    # Everything the page loads is ours: no CDN, no remote font, no inline script or style.
    assert not re.search(r"(src|href)=\"(https?:)?//", page.text)
    assert "<style" not in page.text and " style=" not in page.text
    assert re.search(r"<script(?![^>]*\bsrc=)", page.text) is None
    for name, media_type in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ]:
        asset = await client.get(f"/playground/{name}")
        assert asset.status_code == 200, name
        assert asset.headers["content-type"] == media_type
        assert asset.content == (STATIC_DIR / name).read_bytes()
    assert "https://" not in (await client.get("/playground/app.css")).text


async def test_only_the_pages_files_are_reachable(client: httpx.AsyncClient) -> None:
    for path in ["/playground/index.htm", "/playground/..%2Frouter.py", "/playground/router.py"]:
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"] == "application/problem+json"


async def test_the_playground_is_in_no_openapi_document(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()
    assert not [path for path in document["paths"] if path.startswith("/playground")]


async def test_a_trailing_slash_leads_to_the_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/playground/", follow_redirects=True)
    assert response.status_code == 200
    assert str(response.url).endswith("/playground")
