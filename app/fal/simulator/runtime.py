"""The per-process objects every route needs, handed to routes as one dependency."""

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.fal.model_spec import Catalog, ModelSpec
from app.fal.simulator.jobs import FalQueue
from app.fal.simulator.media import SampleVideo, UploadStore
from app.fal.simulator.settings import SimulatorSettings
from app.fal.simulator.signing import WebhookSigner


@dataclass
class Runtime:
    # Origin clients must use (https://127.0.0.1:PORT): every URL we hand out starts with it.
    base_url: str
    # What the process started with; POST /_simulator/reset returns to it.
    initial_settings: SimulatorSettings
    queue: FalQueue
    signer: WebhookSigner
    uploads: UploadStore
    video: SampleVideo

    @property
    def settings(self) -> SimulatorSettings:
        return self.queue.settings

    def model(self, app_id: str) -> ModelSpec | None:
        """The schema of the endpoint `app_id`, read from the catalog file (None: no such app)."""
        catalog = Catalog.model_validate_json(self.settings.catalog_file.read_bytes())
        return next((m for m in catalog.models if m.fal_endpoint == app_id), None)


def _runtime(request: Request) -> Runtime:
    runtime = request.app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


def _require_fal_key(request: Request) -> None:
    """Fal's queue and storage APIs take `Authorization: Key <FAL_KEY>`; any key works here."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "key" or not key.strip():
        raise HTTPException(
            401, detail="Missing or invalid credentials: use 'Authorization: Key <FAL_KEY>'"
        )


RuntimeDep = Annotated[Runtime, Depends(_runtime)]
FalKeyDep = Annotated[None, Depends(_require_fal_key)]
