"""Credits never fall below what Fal bills, for every model and every priced combination.

Fal's cost is computed here from Fal's published prices, written out below independently of
app/catalog/catalog.json: the catalog is what is under test, so it cannot be the oracle.
Money is exact (Fractions of integers, in US cents); no float touches a price.
"""

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

import pytest

from app.catalog.pricing import credits_for, price_table
from app.catalog.service import CATALOG_FILE
from app.core.config import Settings
from app.fal.model_spec import Catalog, ModelSpec

CATALOG = Catalog.model_validate_json(CATALOG_FILE.read_bytes())
MODELS = {spec.slug: spec for spec in CATALOG.models}
CREDIT_USD = Fraction(CATALOG.credit_usd)
# The shipped default, not whatever PRICE_MARGIN_PERCENT the environment running the tests has.
DEFAULT_MARGIN = Settings.model_fields["price_margin_percent"].default
MARGINS = [0, DEFAULT_MARGIN]

Cents = Fraction
Options = dict[str, Any]


# -- Fal's published prices, in cents -------------------------------------------------------


def base_plus_extra(base_5s: str, extra_per_s: str) -> Callable[[Options], Cents]:
    """Kling: a 5 s clip for `base_5s` cents, each further second `extra_per_s` cents."""
    return lambda o: Fraction(base_5s) + Fraction(extra_per_s) * max(0, o["duration"] - 5)


def per_second(cents_per_s: Callable[[Options], str]) -> Callable[[Options], Cents]:
    return lambda o: Fraction(cents_per_s(o)) * o["duration"]


SEEDANCE_FPS = 24
SEEDANCE_USD_PER_MILLION_TOKENS = Fraction(1)
# Fal's only published frame: "$0.243 for a 1080p 5 s video" (16:9) = 1920x1080 at 24 fps.
FAL_EXAMPLE_1080P = (1920, 1080)
# Seedance 1.0's published output sizes (ByteDance), with Fal's own example for 1080p 16:9.
SEEDANCE_FRAMES: dict[str, dict[str, tuple[int, int]]] = {
    "480p": {
        "21:9": (960, 416),
        "16:9": (864, 480),
        "4:3": (736, 544),
        "1:1": (640, 640),
        "3:4": (544, 736),
        "9:16": (480, 864),
    },
    "720p": {
        "21:9": (1504, 640),
        "16:9": (1248, 704),
        "4:3": (1120, 832),
        "1:1": (960, 960),
        "3:4": (832, 1120),
        "9:16": (704, 1248),
    },
    "1080p": {
        "21:9": (2176, 928),
        "16:9": FAL_EXAMPLE_1080P,
        "4:3": (1664, 1248),
        "1:1": (1440, 1440),
        "3:4": (1248, 1664),
        "9:16": (1088, 1920),
    },
}


def seedance_cents(width: int, height: int, seconds: int) -> Cents:
    tokens = Fraction(width * height * SEEDANCE_FPS * seconds, 1024)
    return tokens * SEEDANCE_USD_PER_MILLION_TOKENS / 1_000_000 * 100


def seedance(o: Options) -> Cents:
    sizes = SEEDANCE_FRAMES[o["resolution"]]
    if o["aspect_ratio"] == "auto":  # Fal follows the input image: the largest frame it may be
        return max(seedance_cents(w, h, o["duration"]) for w, h in sizes.values())
    return seedance_cents(*sizes[o["aspect_ratio"]], o["duration"])


HAILUO_CENTS = {"768P": "4.5", "512P": "1.7"}  # 512P: "roughly $0.017/s"
LTX_CENTS = {"1080p": "4", "1440p": "8", "2160p": "16"}
FAL_CENTS: dict[str, Callable[[Options], Cents]] = {
    "kling-v2-master-t2v": base_plus_extra("140", "28"),
    "kling-v2.1-standard-i2v": base_plus_extra("28", "5.6"),
    "kling-v2.1-pro-i2v": base_plus_extra("49", "9.8"),
    "veo3-t2v": per_second(lambda o: "40" if o["generate_audio"] else "20"),
    "veo3-fast-t2v": per_second(lambda o: "15" if o["generate_audio"] else "10"),
    # The text-to-video page states no price: Fal's 768P image-to-video rate.
    "hailuo-02-standard-t2v": per_second(lambda o: "4.5"),
    "hailuo-02-standard-i2v": per_second(lambda o: HAILUO_CENTS[o["resolution"]]),
    "ltx-2-fast-i2v": per_second(lambda o: LTX_CENTS[o["resolution"]]),
    "seedance-v1-pro-fast-i2v": seedance,
}
# Exact published per-unit prices: our price must be exactly Fal's plus the margin, rounded
# up. Seedance's frame sizes are ours (Fal publishes one example), so only a floor holds there.
EXACT = set(FAL_CENTS) - {"seedance-v1-pro-fast-i2v"}

EXPECTED_COMBINATIONS = {
    "kling-v2-master-t2v": 2,  # duration 5, 10
    "kling-v2.1-standard-i2v": 2,
    "kling-v2.1-pro-i2v": 2,
    "veo3-t2v": 3 * 2,  # duration 4, 6, 8 x generate_audio
    "veo3-fast-t2v": 3 * 2,
    "hailuo-02-standard-t2v": 2,  # duration 6, 10
    "hailuo-02-standard-i2v": 2 * 2,  # x resolution 512P, 768P
    # 8 durations x 3 resolutions, less the 5 durations over 10 s at 1440p and 2160p
    "ltx-2-fast-i2v": 8 * 3 - 5 * 2,
    "seedance-v1-pro-fast-i2v": 11 * 3,  # duration 2..12 x resolution (any aspect: largest)
}


def combinations(spec: ModelSpec) -> list[Options]:
    """Every allowed priced combination, as a request would run it (over the defaults)."""
    return [spec.defaults() | combo for combo in spec.price_combinations()]


def credits(spec: ModelSpec, options: Options, margin: int) -> int:
    return credits_for(spec, options, margin_percent=margin, credit_usd=CREDIT_USD)


def credits_in_cents(count: int) -> Cents:
    return count * CREDIT_USD * 100


# -- tests ----------------------------------------------------------------------------------


def test_every_catalog_model_has_an_independent_price() -> None:
    assert set(FAL_CENTS) == set(MODELS) == set(EXPECTED_COMBINATIONS)
    assert Fraction(CATALOG.credit_usd) == Fraction(1, 100)  # a credit is a US cent
    assert DEFAULT_MARGIN == 20


def test_fal_example_matches_the_token_formula() -> None:
    # Fal: 1920 x 1080 x 24 fps x 5 s / 1024 = 243,000 tokens = $0.243 at $1.0 per million.
    assert Fraction(1920 * 1080 * 24 * 5, 1024) == 243_000
    assert seedance_cents(*FAL_EXAMPLE_1080P, 5) == Fraction("24.3")


@pytest.mark.parametrize("slug", sorted(EXPECTED_COMBINATIONS))
def test_combination_count(slug: str) -> None:
    combos = list(MODELS[slug].price_combinations())
    assert len(combos) == EXPECTED_COMBINATIONS[slug]
    # No combination twice, and each names exactly the price-relevant options.
    assert len({tuple(sorted(c.items())) for c in combos}) == len(combos)
    assert all(set(c) == set(MODELS[slug].price_parameters()) for c in combos)


def test_ltx_leaves_out_long_videos_above_1080p() -> None:
    combos = {
        (c["duration"], c["resolution"]) for c in MODELS["ltx-2-fast-i2v"].price_combinations()
    }
    expected = {(d, "1080p") for d in range(6, 21, 2)}
    expected |= {(d, r) for d in (6, 8, 10) for r in ("1440p", "2160p")}
    assert combos == expected


@pytest.mark.parametrize("margin", MARGINS)
@pytest.mark.parametrize("slug", sorted(FAL_CENTS))
def test_credits_cover_fal_cost(slug: str, margin: int) -> None:
    spec = MODELS[slug]
    below, inexact = [], []
    for options in combinations(spec):
        fal = FAL_CENTS[slug](options)
        charged = credits(spec, options, margin)
        if not credits_in_cents(charged) >= fal * (100 + margin) / 100 >= fal:
            below.append((options, charged, fal))
        if slug in EXACT and charged != math.ceil(fal * (100 + margin) / 100 / 100 / CREDIT_USD):
            inexact.append((options, charged, fal))
    assert below == [], f"{slug} priced below Fal's cost (+{margin}%): {below}"
    assert inexact == [], f"{slug} not Fal's published price (+{margin}%): {inexact}"


@pytest.mark.parametrize("margin", MARGINS)
def test_seedance_1080p_is_never_below_fal_example_frame(margin: int) -> None:
    """Fal publishes one frame, 1920x1080 at 1080p: no 1080p video may be priced below it."""
    spec = MODELS["seedance-v1-pro-fast-i2v"]
    below = []
    for options in combinations(spec):
        if options["resolution"] != "1080p":
            continue
        floor = seedance_cents(*FAL_EXAMPLE_1080P, options["duration"])
        charged = credits(spec, options, margin)
        if credits_in_cents(charged) < floor:
            below.append((options["aspect_ratio"], options["duration"], charged, floor))
    assert below == [], f"1080p at margin {margin}% below Fal's 1920x1080 example: {below}"


@pytest.mark.parametrize("margin", MARGINS)
def test_seedance_auto_is_priced_as_the_largest_frame(margin: int) -> None:
    spec = MODELS["seedance-v1-pro-fast-i2v"]
    pixels = spec.pricing.pixels  # type: ignore[union-attr]
    checked = 0
    for options in combinations(spec):
        if options["aspect_ratio"] != "auto":
            continue
        seconds = options["duration"]
        largest_ours = max(
            seedance_cents(w, h, seconds) for w, h in pixels[options["resolution"]].values()
        )
        largest_published = seedance(options)
        charged = credits_in_cents(credits(spec, options, margin))
        assert charged >= largest_ours * (100 + margin) / 100, options
        assert charged >= largest_published * (100 + margin) / 100, options
        # ... and every fixed aspect ratio costs no more than `auto` at the same settings.
        for aspect in pixels[options["resolution"]]:
            fixed = credits(spec, options | {"aspect_ratio": aspect}, margin)
            assert credits_in_cents(fixed) <= charged, (options, aspect)
        checked += 1
    assert checked == 11 * 3


@pytest.mark.parametrize(
    ("slug", "options", "margin", "expected"),
    [
        ("veo3-t2v", {"duration": 8, "generate_audio": True}, 0, 320),  # 8 x $0.40
        ("veo3-t2v", {"duration": 8, "generate_audio": False}, 0, 160),
        ("veo3-t2v", {"duration": 8, "generate_audio": False}, DEFAULT_MARGIN, 192),  # 160 x 1.2
        ("veo3-fast-t2v", {"duration": 6, "generate_audio": True}, 0, 90),  # 6 x $0.15
        ("kling-v2.1-standard-i2v", {"duration": 5}, 0, 28),
        ("kling-v2.1-standard-i2v", {"duration": 10}, 0, 56),  # $0.28 + 5 x $0.056
        ("kling-v2-master-t2v", {"duration": 10}, DEFAULT_MARGIN, 336),  # $2.80 x 1.2
        ("hailuo-02-standard-i2v", {"duration": 6, "resolution": "512P"}, 0, 11),  # 10.2 c
        ("hailuo-02-standard-t2v", {"duration": 6}, 0, 27),
        ("ltx-2-fast-i2v", {"duration": 10, "resolution": "2160p"}, 0, 160),
        (
            "seedance-v1-pro-fast-i2v",
            {"duration": 5, "resolution": "1080p", "aspect_ratio": "16:9"},
            0,
            math.ceil(Fraction(1920 * 1088 * 24 * 5, 1024) / 10_000),  # 24.48 c: 25
        ),
    ],
)
def test_hand_checked_prices(slug: str, options: Options, margin: int, expected: int) -> None:
    spec = MODELS[slug]
    assert credits(spec, spec.defaults() | options, margin) == expected


def test_price_table_lists_every_combination_with_its_credits() -> None:
    for spec in CATALOG.models:
        table = price_table(spec, margin_percent=DEFAULT_MARGIN, credit_usd=CREDIT_USD)
        assert [combo for combo, _ in table] == list(spec.price_combinations())
        for combo, charged in table:
            assert charged == credits(spec, spec.defaults() | combo, DEFAULT_MARGIN)
