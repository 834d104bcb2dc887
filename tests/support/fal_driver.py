"""Runs the real fal-client against the simulator, in its own process, for the tests.

fal-client reads FAL_QUEUE_RUN_HOST and SSL_CERT_FILE when it is imported, so it cannot
share a process with tests that must not trust the simulator's CA. The test passes a JSON
list of steps on stdin; this script runs them in order with one `AsyncClient` and prints a
JSON list with one result per step. A step that raises records the error and the script
moves on, so a test can assert on failures too.
"""

import asyncio
import json
import sys
import time
from typing import Any

import fal_client
import fal_client.client

POLL_INTERVAL_S = 0.01


def describe(status: Any) -> dict[str, Any]:
    if isinstance(status, fal_client.Queued):
        return {"kind": "Queued", "position": status.position}
    if isinstance(status, fal_client.InProgress):
        return {"kind": "InProgress", "logs": status.logs}
    if isinstance(status, fal_client.Completed):
        return {
            "kind": "Completed",
            "logs": status.logs,
            "metrics": status.metrics,
            "error": status.error,
            "error_type": status.error_type,
        }
    raise TypeError(f"unexpected status {status!r}")


def describe_error(exc: Exception) -> dict[str, Any]:
    error: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, fal_client.client.FalClientHTTPError):
        error.update(status_code=exc.status_code, error_type=exc.error_type)
        try:
            error["body"] = exc.response.json()
        except ValueError:
            error["body"] = exc.response.text
    return {"error": error}


async def run_step(
    client: fal_client.AsyncClient, step: dict[str, Any], ids: dict[str, str]
) -> dict[str, Any]:
    op = step["op"]
    request_id = ids.get(step.get("ref", ""), step.get("request_id", ""))
    timeout = step.get("timeout", 20)
    if op == "submit":
        handle = await client.submit(
            step["app"],
            step["arguments"],
            webhook_url=step.get("webhook_url"),
            headers=step.get("headers", {}),
        )
        ids[step.get("name", "")] = handle.request_id
        return {
            "request_id": handle.request_id,
            "status_url": handle.status_url,
            "response_url": handle.response_url,
            "cancel_url": handle.cancel_url,
        }
    if op == "status":
        return describe(
            await client.status(step["app"], request_id, with_logs=step.get("logs", False))
        )
    if op == "watch":
        # Every status seen until `until` (default Completed), polling fast.
        until = step.get("until", "Completed")
        seen: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = describe(await client.status(step["app"], request_id, with_logs=True))
            seen.append(status)
            if status["kind"] == until:
                return {"seen": seen}
            await asyncio.sleep(POLL_INTERVAL_S)
        raise TimeoutError(f"{request_id} never reached {until}")
    if op == "result":
        return {"result": await asyncio.wait_for(client.result(step["app"], request_id), timeout)}
    if op == "cancel":
        await client.cancel(step["app"], request_id)
        return {"cancelled": request_id}
    if op == "upload":
        fal_client.client.REST_URL = step["rest_url"]
        fal_client.client.CDN_URL = step["cdn_url"]
        url = await client.upload(
            step["data"].encode(), step["content_type"], file_name=step.get("file_name")
        )
        return {"url": url}
    raise ValueError(f"unknown op {op!r}")


async def main() -> None:
    steps = json.load(sys.stdin)
    client = fal_client.AsyncClient()
    ids: dict[str, str] = {}
    results = []
    for step in steps:
        try:
            results.append(await run_step(client, step, ids))
        except Exception as exc:
            results.append(describe_error(exc))
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
