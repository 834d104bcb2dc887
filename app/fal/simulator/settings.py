"""The simulator's knobs, from `FAL_SIMULATOR_*` environment variables (README, "Configuration").

Only the environment is read (no `.env`): the knobs change how a fake behaves, and a
stray `.env` line silently turning on error injection in a test run would be hard to spot.
"""

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The models Fal runs, with their input schemas: the file the service sells from. Read by
# path (the simulator stands in for Fal, below our own domains, and imports none of them).
CATALOG_FILE = Path(__file__).resolve().parents[2] / "catalog" / "catalog.json"


def _rate() -> Any:
    """A probability knob, off by default."""
    return Field(default=0.0, ge=0.0, le=1.0)


class SimulatorSettings(BaseSettings):
    """Latency, fault injection and webhook delivery policy of one simulator process."""

    model_config = SettingsConfigDict(env_prefix="FAL_SIMULATOR_", extra="ignore")

    # Total time from submit to COMPLETED: the first third IN_QUEUE, the rest IN_PROGRESS.
    delay_s: float = Field(default=2.0, ge=0.0)
    # Chance that a normal request ends as a runner failure (COMPLETED with an error).
    error_rate: float = _rate()
    # Chance that a finished request's webhook is never delivered.
    drop_webhook_rate: float = _rate()
    # Chance that a finished request's webhook is delivered twice.
    duplicate_webhook_rate: float = _rate()
    # Chance that a submit answers HTTP 500 and creates no request (fal-client won't retry it).
    submit_error_rate: float = _rate()
    # Seeds the fault-injection RNG so a flaky-looking run can be replayed.
    seed: int | None = None

    # Real Fal retries a failed delivery 10 times over about 2 hours; locally we keep it short.
    webhook_attempts: int = Field(default=3, ge=1)
    webhook_backoff_s: float = Field(default=0.5, ge=0.0)
    webhook_timeout_s: float = Field(default=5.0, gt=0.0)
    # Real Fal removes a queued request on cancel; by default no webhook follows a cancel.
    webhook_on_cancel: bool = False
    # Off: a cancel of a running request only signals the app, which finishes regardless.
    cancel_running: bool = True
    # A submit is accepted at once but answered this late (a slow or lost answer).
    submit_delay_s: float = Field(default=0.0, ge=0.0)
    # Fal's files do not last forever (its retention is not published): an output or upload
    # is 404 this long after it was made. Unset: kept while the simulator runs.
    file_ttl_s: float | None = Field(default=None, gt=0.0)
    # Served as every successful output instead of the 2-second sample (benchmarks of large
    # outputs; bench/media.py).
    output_file: Path | None = None
    # Sent as X-Fal-Webhook-User-Id and covered by the signature.
    user_id: str = "fal-simulator-user"
    # Each submission is validated against its endpoint's schema from this file, and refused
    # (422 with a `detail` list, as Fal's queue does) when it does not match.
    catalog_file: Path = CATALOG_FILE

    def updated(self, changes: dict[str, Any]) -> "SimulatorSettings":
        """A copy with `changes` applied and validated; unknown names raise ValueError.

        Init arguments outrank the environment, so passing every field keeps the
        environment from leaking back in.
        """
        unknown = set(changes) - set(type(self).model_fields)
        if unknown:
            raise ValueError(f"unknown simulator settings: {', '.join(sorted(unknown))}")
        return type(self)(**{**self.model_dump(), **changes})
