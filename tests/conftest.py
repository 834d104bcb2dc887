"""The shared fixtures live in tests/support/fixtures.py (PostgreSQL, the app, the Fal
simulator); helpers that tests import are plain modules beside it in tests/support/."""

import pytest

# Helpers there assert too: keep pytest's detailed messages for them.
pytest.register_assert_rewrite("tests.support")

pytest_plugins = ["tests.support.fixtures"]
