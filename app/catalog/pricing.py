"""Credits for a run: Fal's cost plus our margin, rounded up to whole credits.

credits = ceil(Fal's cost in USD x (100 + PRICE_MARGIN_PERCENT) / 100 / USD per credit),
computed on exact fractions of integers, so no price is ever below Fal's bill by rounding.
"""

import math
from fractions import Fraction
from typing import Any

from app.fal.model_spec import ModelSpec


def credits_for(
    spec: ModelSpec, options: dict[str, Any], *, margin_percent: int, credit_usd: Fraction
) -> int:
    """What a run with these normalised options costs the user."""
    cost = spec.fal_cost_usd(options)
    return math.ceil(cost * (100 + margin_percent) / 100 / credit_usd)


def price_table(
    spec: ModelSpec, *, margin_percent: int, credit_usd: Fraction
) -> list[tuple[dict[str, Any], int]]:
    """Every allowed combination of the price-relevant options, with its credits."""
    defaults = spec.defaults()
    return [
        (combo, credits_for(spec, defaults | combo, margin_percent=margin_percent,
                            credit_usd=credit_usd))
        for combo in spec.price_combinations()
    ]  # fmt: skip
