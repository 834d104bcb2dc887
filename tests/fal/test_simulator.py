"""The Fal simulator, driven by the real fal-client exactly as production code drives Fal.

The simulator runs as a real subprocess on 127.0.0.1 over TLS; fal-client runs in another
child (`tests/support/fal_driver.py`) because it reads FAL_QUEUE_RUN_HOST / SSL_CERT_FILE at
import. Webhooks land on a small threaded HTTP receiver here. Nothing waits by sleeping: each
wait is a bounded poll or a condition variable.
"""

import base64
import datetime as dt
import hashlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.fal.simulator import SimulatorProcess, SimulatorSettings, WebhookSigner
from app.fal.simulator.certs import ensure_certificates
from tests.support.helpers import run_fal

I2V = "fal-ai/kling-video/v2.1/standard/image-to-video"
T2V = "fal-ai/kling-video/v2/master/text-to-video"
DELAY_S = 0.4
WAIT_S = 15.0


# -- webhook receiver -------------------------------------------------------------------


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    answered: int

    @property
    def request_id(self) -> str:
        return self.headers.get("x-fal-webhook-request-id", "")

    def json(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


class WebhookReceiver:
    """Records every POST; `?fail=N` in the URL answers 500 to the first N posts there."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self._posts_per_url: dict[str, int] = {}
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                fail = int(parse_qs(urlsplit(self.path).query).get("fail", ["0"])[0])
                with receiver._changed:
                    seen = receiver._posts_per_url.get(self.path, 0)
                    receiver._posts_per_url[self.path] = seen + 1
                    code = 500 if seen < fail else 200
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    receiver.received.append(Received(self.path, headers, body, code))
                    receiver._changed.notify_all()
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/api/webhooks/fal"

    def for_request(self, request_id: str) -> list[Received]:
        with self._changed:
            return [r for r in self.received if r.request_id == request_id]

    def wait_for(self, request_id: str, count: int = 1, timeout: float = WAIT_S) -> list[Received]:
        with self._changed:
            self._changed.wait_for(
                lambda: len([r for r in self.received if r.request_id == request_id]) >= count,
                timeout,
            )
            found = [r for r in self.received if r.request_id == request_id]
        assert len(found) >= count, f"{len(found)} webhook(s) for {request_id}, wanted {count}"
        return found

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


# -- helpers ----------------------------------------------------------------------------


def wait_webhook_state(sim: SimulatorProcess, request_id: str, state: str) -> dict[str, Any]:
    """The job record once its webhook reached `state`; fail after a bounded wait."""
    deadline = time.monotonic() + WAIT_S
    while (job := sim.job(request_id))["webhook"]["state"] != state:
        assert time.monotonic() < deadline, f"webhook of {request_id} stuck in {job['webhook']}"
        time.sleep(0.02)
    return job


def verifies(delivery: Received, jwks: dict[str, Any]) -> bool:
    """Fal's scheme, rebuilt independently of the simulator's code."""
    h = delivery.headers
    message = "\n".join(
        [
            h["x-fal-webhook-request-id"],
            h["x-fal-webhook-user-id"],
            h["x-fal-webhook-timestamp"],
            hashlib.sha256(delivery.body).hexdigest(),
        ]
    ).encode()
    signature = bytes.fromhex(h["x-fal-webhook-signature"])
    assert len(signature) == 64
    for key in jwks["keys"]:
        x = key["x"]
        public = Ed25519PublicKey.from_public_bytes(
            base64.urlsafe_b64decode(x + "=" * (-len(x) % 4))
        )
        try:
            public.verify(signature, message)
        except InvalidSignature:
            continue
        return True
    return False


def fetch_jwks(sim: SimulatorProcess) -> dict[str, Any]:
    response = httpx.get(sim.jwks_url, verify=sim.ssl_context())
    response.raise_for_status()
    jwks: dict[str, Any] = response.json()
    return jwks


def mp4_boxes(data: bytes) -> list[str]:
    """Top-level ISO-BMFF box types, checking each size fits the file."""
    boxes, offset = [], 0
    while offset < len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        assert 8 <= size <= len(data) - offset, f"bad box size {size} at {offset}"
        boxes.append(data[offset + 4 : offset + 8].decode("latin-1"))
        offset += size
    return boxes


def submit(name: str, prompt: str, app: str = I2V, **extra: Any) -> dict[str, Any]:
    arguments = {"prompt": prompt, "image_url": "https://example.com/cat.png", "duration": "5"}
    return {"op": "submit", "name": name, "app": app, "arguments": arguments, **extra}


# -- fixtures ---------------------------------------------------------------------------


# This module's own process, in place of the run's shared `simulator` (tests/support/fixtures.py):
# the simulator's own tests start it with their knobs and rely on a reset restoring exactly those.
@pytest.fixture(scope="module")
def simulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    knobs = {"delay_s": DELAY_S, "webhook_backoff_s": 0.02, "seed": 7}
    with SimulatorProcess(tmp_path_factory.mktemp("fal-sim"), knobs=knobs) as sim:
        yield sim


@pytest.fixture
def sim(simulator: SimulatorProcess) -> SimulatorProcess:
    """The shared simulator, with records cleared and startup knobs restored."""
    simulator.reset()
    return simulator


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.close()


# -- building blocks, in-process --------------------------------------------------------


def test_certificates_chain_to_a_ca_for_loopback(tmp_path: Path) -> None:
    paths = ensure_certificates(tmp_path)
    ca = x509.load_pem_x509_certificate(paths.ca_file.read_bytes())
    server = x509.load_pem_x509_certificate(paths.cert_file.read_bytes())

    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert server.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    server.verify_directly_issued_by(ca)
    assert oct(paths.key_file.stat().st_mode & 0o777) == "0o600"

    before = [p.read_bytes() for p in (paths.ca_file, paths.cert_file, paths.key_file)]
    again = ensure_certificates(tmp_path)
    assert [p.read_bytes() for p in (again.ca_file, again.cert_file, again.key_file)] == before


def test_signer_key_persists_and_matches_its_jwks(tmp_path: Path) -> None:
    signer = WebhookSigner.load_or_create(tmp_path)
    assert WebhookSigner.load_or_create(tmp_path).public_bytes == signer.public_bytes
    body = b'{"request_id":"r1"}'
    timestamp = str(int(time.time()))
    delivery = Received(
        "/",
        {
            "x-fal-webhook-request-id": "r1",
            "x-fal-webhook-user-id": "u1",
            "x-fal-webhook-timestamp": timestamp,
            "x-fal-webhook-signature": signer.sign("r1", "u1", timestamp, body),
        },
        body,
        200,
    )
    jwks = signer.jwks()
    assert jwks["keys"][0]["kty"] == "OKP" and jwks["keys"][0]["crv"] == "Ed25519"
    assert "=" not in jwks["keys"][0]["x"]
    assert verifies(delivery, jwks)
    assert not verifies(Received("/", delivery.headers, body + b" ", 200), jwks)


def test_settings_come_from_fal_simulator_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAL_SIMULATOR_DELAY_S", "0.7")
    monkeypatch.setenv("FAL_SIMULATOR_ERROR_RATE", "0.1")
    monkeypatch.setenv("FAL_SIMULATOR_DROP_WEBHOOK_RATE", "0.2")
    monkeypatch.setenv("FAL_SIMULATOR_DUPLICATE_WEBHOOK_RATE", "0.3")
    monkeypatch.setenv("FAL_SIMULATOR_SUBMIT_ERROR_RATE", "0.4")
    monkeypatch.setenv("FAL_SIMULATOR_SEED", "42")
    settings = SimulatorSettings()
    assert (settings.delay_s, settings.error_rate, settings.drop_webhook_rate) == (0.7, 0.1, 0.2)
    assert (settings.duplicate_webhook_rate, settings.submit_error_rate) == (0.3, 0.4)
    assert settings.seed == 42

    assert settings.updated({"error_rate": 1.0}).error_rate == 1.0
    with pytest.raises(ValueError):
        settings.updated({"error_rate": 1.5})
    with pytest.raises(ValueError):
        settings.updated({"no_such_knob": 1})


# -- the queue protocol through the real fal-client -------------------------------------


def test_submit_status_result_and_signed_webhook(
    sim: SimulatorProcess, receiver: WebhookReceiver
) -> None:
    submitted, first, result, final = run_fal(
        sim,
        [
            submit("a", "a red fox in the snow", webhook_url=receiver.url),
            {"op": "status", "app": I2V, "ref": "a"},
            {"op": "result", "app": I2V, "ref": "a"},
            {"op": "status", "app": I2V, "ref": "a", "logs": True},
        ],
    )
    request_id = submitted["request_id"]
    # fal-client's by-id URLs use owner/alias only; the simulator hands out the same form.
    queue_url = f"{sim.base_url}/fal-ai/kling-video/requests/{request_id}"
    assert submitted["response_url"] == queue_url
    assert submitted["status_url"] == f"{queue_url}/status"
    assert submitted["cancel_url"] == f"{queue_url}/cancel"
    assert first["kind"] in {"Queued", "InProgress"}

    video = result["result"]["video"]
    assert video["url"] == f"{sim.base_url}/files/{request_id}.mp4"
    assert video["content_type"] == "video/mp4"
    assert isinstance(result["result"]["seed"], int)
    assert final["kind"] == "Completed" and final["error"] is None
    assert final["metrics"]["inference_time"] > 0
    assert [log["message"] for log in final["logs"]][-1] == "Video generated"

    download = httpx.get(video["url"], verify=sim.ssl_context())
    assert download.status_code == 200
    assert download.headers["content-type"] == "video/mp4"
    assert len(download.content) == video["file_size"]
    boxes = mp4_boxes(download.content)
    assert boxes[0] == "ftyp" and {"moov", "mdat"} <= set(boxes)

    (delivery,) = receiver.wait_for(request_id)
    assert delivery.path == "/api/webhooks/fal"
    assert delivery.headers["content-type"] == "application/json"
    assert delivery.headers["x-fal-webhook-user-id"]
    assert abs(int(delivery.headers["x-fal-webhook-timestamp"]) - time.time()) < 300
    assert verifies(delivery, fetch_jwks(sim))
    body = delivery.json()
    assert body == {
        "request_id": request_id,
        "gateway_request_id": request_id,
        "status": "OK",
        "payload": result["result"],
        "error": None,
    }

    assert sim.submissions()["by_prompt"] == {"a red fox in the snow": 1}
    assert sim.webhooks()["delivered_by_request_id"] == {request_id: 1}
    job = sim.job(request_id)
    assert job["app_id"] == I2V and job["webhook"]["state"] == "delivered"


def test_status_goes_from_queue_to_progress_to_completed(sim: SimulatorProcess) -> None:
    sim.configure(delay_s=1.2)  # long enough to see every phase from a child process
    _, watched = run_fal(
        sim, [submit("w", "a slow pan over a lake"), {"op": "watch", "app": I2V, "ref": "w"}]
    )
    seen = watched["seen"]
    order = {"Queued": 0, "InProgress": 1, "Completed": 2}
    ranks = [order[s["kind"]] for s in seen]
    assert ranks == sorted(ranks) and set(ranks) == {0, 1, 2}
    positions = [s["position"] for s in seen if s["kind"] == "Queued"]
    assert positions == sorted(positions, reverse=True) and positions[-1] >= 0
    assert seen[-1]["metrics"]["inference_time"] > 0


def test_fail_prompt_completes_with_an_error(
    sim: SimulatorProcess, receiver: WebhookReceiver
) -> None:
    submitted, watched, result = run_fal(
        sim,
        [
            submit("f", "#fail a forbidden scene", webhook_url=receiver.url),
            {"op": "watch", "app": I2V, "ref": "f"},
            {"op": "result", "app": I2V, "ref": "f"},
        ],
    )
    completed = watched["seen"][-1]
    assert completed["kind"] == "Completed"  # there is no FAILED status
    assert completed["error"] and completed["error_type"] == "content_policy_violation"

    error = result["error"]
    assert error["type"] == "FalClientHTTPError" and error["status_code"] == 422
    (detail,) = error["body"]["detail"]
    assert detail["loc"] == ["body", "prompt"] and detail["type"] == "content_policy_violation"

    (delivery,) = receiver.wait_for(submitted["request_id"])
    assert verifies(delivery, fetch_jwks(sim))
    body = delivery.json()
    assert body["status"] == "ERROR"
    assert body["error"] == "Invalid status code: 422"
    assert body["payload"] == error["body"]


def test_hold_stays_in_progress_until_cancelled(
    sim: SimulatorProcess, receiver: WebhookReceiver
) -> None:
    unknown = "00000000-0000-4000-8000-000000000000"
    results = run_fal(
        sim,
        [
            submit("h", "#hold a long shot", webhook_url=receiver.url),
            submit("n", "a short shot"),
            # `n` was submitted after `h` and is done: `h` has had every chance to finish.
            {"op": "result", "app": I2V, "ref": "n"},
            {"op": "status", "app": I2V, "ref": "h"},
            {"op": "cancel", "app": I2V, "ref": "h"},
            {"op": "status", "app": I2V, "ref": "h"},
            {"op": "cancel", "app": I2V, "ref": "h"},
            {"op": "result", "app": I2V, "ref": "h"},
            {"op": "cancel", "app": I2V, "request_id": unknown},
        ],
    )
    held, _, normal, before, cancelled, after, again, held_result, missing = results
    assert "result" in normal
    assert before["kind"] == "InProgress"
    assert cancelled == {"cancelled": held["request_id"]}
    assert after["kind"] == "Completed" and after["error_type"] == "client_cancelled"
    assert again["error"]["status_code"] == 400
    assert again["error"]["body"] == {"status": "ALREADY_COMPLETED"}
    assert held_result["error"]["status_code"] == 499
    assert missing["error"]["status_code"] == 404
    assert missing["error"]["body"] == {"status": "NOT_FOUND"}

    assert sim.stats()["cancel_calls"] == 3
    job = sim.job(held["request_id"])
    assert job["cancel_calls"] == 2 and job["outcome"] == "cancelled"
    # No webhook follows a cancel (FAL_SIMULATOR_WEBHOOK_ON_CANCEL is off).
    assert job["webhook"]["state"] == "skipped"
    assert receiver.for_request(held["request_id"]) == []


def test_webhook_on_cancel_sends_an_error_webhook(
    sim: SimulatorProcess, receiver: WebhookReceiver
) -> None:
    sim.configure(webhook_on_cancel=True)
    held, _ = run_fal(
        sim,
        [
            submit("h", "#hold then cancel", webhook_url=receiver.url),
            {"op": "cancel", "app": I2V, "ref": "h"},
        ],
    )
    (delivery,) = receiver.wait_for(held["request_id"])
    assert verifies(delivery, fetch_jwks(sim))
    body = delivery.json()
    assert body["status"] == "ERROR" and body["error"] == "Invalid status code: 499"
    assert body["payload"]["error_type"] == "client_cancelled"


def test_slow_prompt_takes_ten_times_the_delay(sim: SimulatorProcess) -> None:
    slow, normal, _, status = run_fal(
        sim,
        [
            submit("s", "#slow a sunrise timelapse"),
            submit("n", "a quick sunrise"),
            {"op": "result", "app": I2V, "ref": "n"},
            {"op": "status", "app": I2V, "ref": "s"},
        ],
    )
    assert status["kind"] != "Completed"
    slow_job, normal_job = sim.job(slow["request_id"]), sim.job(normal["request_id"])
    slow_total = slow_job["queue_s"] + slow_job["run_s"]
    assert slow_total == pytest.approx(10 * (normal_job["queue_s"] + normal_job["run_s"]))


def test_upload_returns_a_url_serving_the_bytes(sim: SimulatorProcess) -> None:
    (uploaded,) = run_fal(
        sim,
        [
            {
                "op": "upload",
                "data": "first frame, as text",
                "content_type": "text/plain",
                "file_name": "frame.txt",
                "rest_url": sim.base_url,
                "cdn_url": sim.base_url,
            }
        ],
    )
    assert uploaded["url"].startswith(f"{sim.base_url}/files/")
    response = httpx.get(uploaded["url"], verify=sim.ssl_context())
    assert response.status_code == 200
    assert response.content == b"first frame, as text"
    assert response.headers["content-type"].startswith("text/plain")


def test_submissions_are_recorded_per_prompt(sim: SimulatorProcess) -> None:
    marker = {"X-Idempotency-Key": "video-123"}
    run_fal(sim, [submit("1", "p one", headers=marker), submit("2", "p one"), submit("3", "p two")])
    submissions = sim.submissions()
    assert submissions["total"] == 3
    assert submissions["by_prompt"] == {"p one": 2, "p two": 1}
    first = submissions["submissions"][0]
    assert first["app_id"] == I2V and first["input"]["prompt"] == "p one"
    assert first["headers"]["x-idempotency-key"] == "video-123"


# -- fault injection ---------------------------------------------------------------------


def test_submit_error_rate_answers_500_and_creates_nothing(sim: SimulatorProcess) -> None:
    assert sim.configure(submit_error_rate=1.0)["submit_error_rate"] == 1.0
    (result,) = run_fal(sim, [submit("x", "never queued")])
    error = result["error"]
    assert error["type"] == "FalClientHTTPError"
    assert error["status_code"] == 500 and error["error_type"] == "internal_error"

    submissions = sim.submissions()
    # One call: fal-client does not retry a 500.
    assert submissions["total"] == 1 and submissions["by_prompt"] == {}
    assert submissions["rejected_by_prompt"] == {"never queued": 1}
    assert sim.jobs() == []


def test_error_rate_turns_requests_into_runner_failures(
    sim: SimulatorProcess, receiver: WebhookReceiver
) -> None:
    sim.configure(error_rate=1.0)
    submitted, result, status = run_fal(
        sim,
        [
            submit("e", "an ordinary prompt", webhook_url=receiver.url),
            {"op": "result", "app": I2V, "ref": "e"},
            {"op": "status", "app": I2V, "ref": "e"},
        ],
    )
    assert result["error"]["status_code"] == 500
    assert result["error"]["error_type"] == "runner_server_error"
    assert status["kind"] == "Completed" and status["error_type"] == "runner_server_error"
    (delivery,) = receiver.wait_for(submitted["request_id"])
    assert delivery.json()["status"] == "ERROR"
    assert delivery.json()["error"] == "Invalid status code: 500"


def test_duplicate_webhook_rate_delivers_twice(
    sim: SimulatorProcess, receiver: WebhookReceiver
) -> None:
    sim.configure(duplicate_webhook_rate=1.0)
    submitted, _ = run_fal(
        sim,
        [
            submit("d", "seen twice", webhook_url=receiver.url),
            {"op": "result", "app": I2V, "ref": "d"},
        ],
    )
    request_id = submitted["request_id"]
    first, second = receiver.wait_for(request_id, count=2)
    assert first.body == second.body
    jwks = fetch_jwks(sim)
    assert verifies(first, jwks) and verifies(second, jwks)
    wait_webhook_state(sim, request_id, "delivered")
    assert sim.webhooks()["delivered_by_request_id"][request_id] == 2


def test_webhook_delivery_retries_until_accepted(
    sim: SimulatorProcess, receiver: WebhookReceiver
) -> None:
    sim.configure(webhook_attempts=3)
    flaky, doomed, *_ = run_fal(
        sim,
        [
            submit("ok", "accepted on the third try", webhook_url=f"{receiver.url}?fail=2"),
            submit("no", "never accepted", webhook_url=f"{receiver.url}?fail=99"),
            {"op": "result", "app": I2V, "ref": "ok"},
            {"op": "result", "app": I2V, "ref": "no"},
        ],
    )
    jwks = fetch_jwks(sim)

    job = wait_webhook_state(sim, flaky["request_id"], "delivered")
    assert [a["status_code"] for a in job["webhook"]["attempts"]] == [500, 500, 200]
    deliveries = receiver.for_request(flaky["request_id"])
    assert [d.answered for d in deliveries] == [500, 500, 200]
    assert all(verifies(d, jwks) for d in deliveries)  # each attempt freshly signed

    job = wait_webhook_state(sim, doomed["request_id"], "failed")
    assert len(job["webhook"]["attempts"]) == 3
    assert len(receiver.for_request(doomed["request_id"])) == 3


def test_drop_webhook_rate_sends_nothing(
    tmp_path_factory: pytest.TempPathFactory, receiver: WebhookReceiver
) -> None:
    knobs = {"delay_s": 0.2, "drop_webhook_rate": 1.0}
    with SimulatorProcess(tmp_path_factory.mktemp("fal-sim-drop"), knobs=knobs) as dropping:
        assert dropping.control("GET", "config")["drop_webhook_rate"] == 1.0
        submitted, result = run_fal(
            dropping,
            [
                submit("x", "lost webhook", webhook_url=receiver.url),
                {"op": "result", "app": I2V, "ref": "x"},
            ],
        )
        assert "result" in result
        request_id = submitted["request_id"]
        # The drop is decided when the request completes, before its result is readable.
        assert dropping.job(request_id)["webhook"]["state"] == "dropped"
        assert dropping.stats()["webhook_attempts"] == 0
        assert receiver.for_request(request_id) == []


# -- raw HTTP edges fal-client does not reach -------------------------------------------


def test_protocol_edges_over_raw_http(sim: SimulatorProcess) -> None:
    auth = {"Authorization": "Key test-id:test-secret"}
    with httpx.Client(base_url=sim.base_url, verify=sim.ssl_context()) as http:
        assert http.post(f"/{T2V}", json={"prompt": "x"}).status_code == 401
        assert http.post(f"/{T2V}", json=[1, 2], headers=auth).status_code == 422

        submitted = http.post(f"/{T2V}", json={"prompt": "#hold raw"}, headers=auth)
        assert submitted.status_code == 200
        body = submitted.json()
        assert body["status"] == "IN_QUEUE" and body["queue_position"] >= 0
        assert set(body) >= {"request_id", "response_url", "status_url", "cancel_url"}
        request_id = body["request_id"]

        # The full endpoint path works for by-id calls as well as owner/alias.
        full = http.get(f"/{T2V}/requests/{request_id}/status", params={"logs": 1}, headers=auth)
        assert full.status_code == 202 and full.json()["status"] in {"IN_QUEUE", "IN_PROGRESS"}
        assert http.get(f"/{T2V}/requests/{request_id}/status").status_code == 401
        pending = http.get(f"/fal-ai/kling-video/requests/{request_id}", headers=auth)
        assert pending.status_code == 400
        assert http.get(f"/files/{request_id}.mp4").status_code == 404
        unknown = http.get("/fal-ai/kling-video/requests/nope/status", headers=auth)
        assert unknown.status_code == 404

        jwks = http.get("/.well-known/jwks.json").json()
        (key,) = jwks["keys"]
        assert key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["kid"]
        assert len(base64.urlsafe_b64decode(key["x"] + "=" * (-len(key["x"]) % 4))) == 32

        token = http.post("/storage/auth/token", params={"storage_type": "fal-cdn-v3"}, json={})
        assert token.status_code == 401
        token = http.post("/storage/auth/token", json={}, headers=auth).json()
        assert dt.datetime.fromisoformat(token["expires_at"]) > dt.datetime.now(dt.UTC)
        assert http.post("/files/upload", content=b"x").status_code == 401

        # fal-client's fallback upload path: initiate, then PUT the bytes.
        spec = {"file_name": "still.png", "content_type": "image/png"}
        initiated = http.post("/storage/upload/initiate", json=spec, headers=auth).json()
        put = http.put(
            initiated["upload_url"], content=b"png!", headers={"Content-Type": "image/png"}
        )
        assert put.status_code == 200
        stored = http.get(initiated["file_url"])
        assert stored.content == b"png!" and stored.headers["content-type"] == "image/png"


def test_simulator_exits_when_its_parent_is_gone(tmp_path: Path) -> None:
    """A crashed test run must not leave servers behind: the child watches its parent."""
    not_our_parent = 1  # init: the watchdog sees "parent changed" at once
    command = [sys.executable, "-m", "app.fal.simulator", "--port", "0"]
    command += ["--state-dir", str(tmp_path), "--parent-pid", str(not_our_parent)]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # 0: graceful uvicorn shutdown; -SIGTERM: the signal beat uvicorn's handlers.
        assert proc.wait(timeout=WAIT_S) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
