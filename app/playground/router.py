"""`GET /playground`: the page and its two assets, served with a strict Content-Security-Policy."""

from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.core.deps import SettingsDep
from app.core.errors import NotFound

STATIC_DIR = Path(__file__).with_name("static")
# The page's files by URL name: nothing else under static/ is reachable.
ASSETS = {
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "icon.svg": "image/svg+xml",
}
# Media comes from /media on this origin (local backend) or presigned https URLs (s3).
CSP = (
    "default-src 'self'; img-src 'self' blob: data: https:{media};"
    " media-src 'self' blob: https:{media}; connect-src 'self' https:; style-src 'self';"
    " script-src 'self'; frame-ancestors 'none'"
)

router = APIRouter(include_in_schema=False)


def _headers(public_base_url: str) -> dict[str, str]:
    # Signed media URLs name PUBLIC_BASE_URL; when that is plain http on another host than the
    # page's (localhost against 127.0.0.1), 'self' would not cover it.
    public = urlsplit(public_base_url)
    media = f" {public.scheme}://{public.netloc}" if public.scheme == "http" else ""
    return {
        "Content-Security-Policy": CSP.format(media=media),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        # Revalidated on every load (ETag), so a deploy is picked up at once.
        "Cache-Control": "no-cache",
    }


@router.api_route("/playground", methods=["GET", "HEAD"])
async def playground_page(settings: SettingsDep) -> FileResponse:
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers=_headers(settings.public_base_url),
    )


@router.api_route("/playground/{name}", methods=["GET", "HEAD"])
async def playground_asset(name: str, settings: SettingsDep) -> FileResponse:
    media_type = ASSETS.get(name)
    if media_type is None:
        raise NotFound(f"no playground file {name!r}")
    return FileResponse(
        STATIC_DIR / name, media_type=media_type, headers=_headers(settings.public_base_url)
    )
