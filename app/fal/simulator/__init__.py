"""A protocol-faithful Fal.ai simulator: queue API, storage, signed webhooks, JWKS (docs/fal.md).

The real `fal-client` talks to it over HTTPS on 127.0.0.1 (set `FAL_QUEUE_RUN_HOST` and
`SSL_CERT_FILE` before importing fal_client; see `client_env`). Latency and faults come
from `FAL_SIMULATOR_*` knobs and prompt test values (`#fail`, `#hold`, `#slow`).
"""

from app.fal.simulator.process import (
    DEFAULT_FAL_KEY,
    DEFAULT_PORT,
    DEFAULT_STATE_DIR,
    SimulatorInfo,
    SimulatorProcess,
    client_env,
    run_simulator,
)
from app.fal.simulator.server import create_app
from app.fal.simulator.settings import SimulatorSettings
from app.fal.simulator.signing import WebhookSigner, signed_message

__all__ = [
    "DEFAULT_FAL_KEY",
    "DEFAULT_PORT",
    "DEFAULT_STATE_DIR",
    "SimulatorInfo",
    "SimulatorProcess",
    "SimulatorSettings",
    "WebhookSigner",
    "client_env",
    "create_app",
    "run_simulator",
    "signed_message",
]
