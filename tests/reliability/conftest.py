"""The reliability suite: the shared Fal simulator with a shorter job delay, so crash and
restart tests drain quickly. Its load helpers are in tests/support/traffic.py."""

from typing import Any

import pytest

SIMULATOR_DELAY_S = 0.2


@pytest.fixture
def simulator_knobs() -> dict[str, Any]:
    """Jobs of 0.2 s, and webhooks retried long enough to outlast a restarting replica."""
    # Webhook deliveries retried for ~15 s (real Fal: 10 times over ~2 h), so a delivery
    # that meets a restarting replica arrives once it is back.
    return {"delay_s": SIMULATOR_DELAY_S, "seed": 11, "webhook_attempts": 6}
