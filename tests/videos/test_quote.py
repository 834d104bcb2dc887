"""Quotes, model parameters and prices: a frontend can render the form and the price, and a
create charges exactly what the quote said (the client contract of app/videos/router.py)."""

import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.factories import ApiUser, create_user

IMAGE = "https://images.example.com/cat.png"


async def quote(client: httpx.AsyncClient, user: ApiUser, body: dict[str, Any]) -> httpx.Response:
    return await client.post("/api/videos/quote", json=body, headers=user.auth)


async def create(client: httpx.AsyncClient, user: ApiUser, body: dict[str, Any]) -> httpx.Response:
    headers = {**user.auth, "Idempotency-Key": str(uuid.uuid4())}
    return await client.post("/api/videos", json=body, headers=headers)


@pytest.mark.parametrize(
    ("body", "credits", "options"),
    [
        # Veo 3: Fal bills $0.20/s without sound, $0.40/s with; ours is off unless asked.
        ({"model": "veo3-t2v"}, 192,
         {"duration": 8, "aspect_ratio": "16:9", "resolution": "720p", "generate_audio": False}),
        ({"model": "veo3-t2v", "generate_audio": True}, 384, {"generate_audio": True}),
        ({"model": "veo3-fast-t2v", "duration": 4, "generate_audio": True}, 72,
         {"duration": 4, "generate_audio": True}),
        # LTX-2 Fast: $0.04 / $0.08 / $0.16 per second by resolution, integer durations.
        ({"model": "ltx-2-fast-i2v", "image_url": IMAGE, "resolution": "2160p"}, 116,
         {"duration": 6, "resolution": "2160p", "fps": 25, "generate_audio": True}),
        # Seedance: Fal's defaults (auto, 1080p), priced at the largest 1080p frame.
        ({"model": "seedance-v1-pro-fast-i2v", "image_url": IMAGE}, 30,
         {"duration": 5, "aspect_ratio": "auto", "resolution": "1080p", "camera_fixed": False}),
        # Hailuo 02: $0.045/s at 768P (the default), about $0.017/s at 512P.
        ({"model": "hailuo-02-standard-i2v", "image_url": IMAGE, "resolution": "512P"}, 13,
         {"duration": 6, "resolution": "512P", "prompt_optimizer": True}),
        ({"model": "kling-v2.1-pro-i2v", "image_url": IMAGE, "duration": 10}, 118,
         {"duration": 10, "negative_prompt": "blur, distort, and low quality"}),
    ],
)  # fmt: skip
async def test_a_quote_prices_the_normalised_options_and_a_create_charges_exactly_it(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    body: dict[str, Any],
    credits: int,
    options: dict[str, Any],
) -> None:
    user = await create_user(client, credits=10_000)
    body = {"prompt": "a lighthouse in a storm"} | body
    records = await db.fetchval('SELECT count(*) FROM "idempotencyRequests"')
    quoted = await quote(client, user, body)
    assert quoted.status_code == 200, quoted.text
    answer = quoted.json()
    assert answer["credits"] == credits and answer["model"] == body["model"]
    assert answer.items() >= options.items(), answer
    # A quote writes nothing: no video, no ledger row, no idempotency record.
    assert await db.fetchval("SELECT count(*) FROM videos") == 0
    assert await db.fetchval('SELECT count(*) FROM "idempotencyRequests"') == records

    created = await create(client, user, body)
    assert created.status_code == 202, created.text
    video = created.json()
    assert video["credits_charged"] == credits
    assert video["options"].items() >= options.items()
    assert (
        await db.fetchval(
            'SELECT amount FROM "creditTransactions" WHERE "videoId" = $1', uuid.UUID(video["id"])
        )
        == -credits
    )


@pytest.mark.parametrize(
    ("body", "code", "field", "detail"),
    [
        ({"model": "veo3-t2v", "seed": 1, "cfg_scale": 0.5}, "unsupported_parameter", "cfg_scale",
         "does not take 'cfg_scale'"),
        ({"model": "veo3-t2v", "duration": 5}, "unsupported_duration", "duration",
         "must be one of 4, 6, 8"),
        ({"model": "veo3-t2v", "resolution": "4k"}, "unsupported_resolution", "resolution",
         "must be one of 720p, 1080p"),
        ({"model": "ltx-2-fast-i2v", "image_url": IMAGE, "fps": 30}, "unsupported_value", "fps",
         "must be one of 25, 50"),
        ({"model": "ltx-2-fast-i2v", "image_url": IMAGE, "duration": 12, "resolution": "1440p"},
         "unsupported_combination", "duration", "over 10 s run only at 1080p and 25 fps"),
        ({"model": "ltx-2-fast-i2v", "image_url": IMAGE, "duration": 20, "fps": 50},
         "unsupported_combination", "fps", "over 10 s run only at 1080p and 25 fps"),
        ({"model": "ltx-2-fast-i2v", "image_url": IMAGE, "seed": 3}, "unsupported_parameter",
         "seed", "does not take 'seed'"),
        ({"model": "hailuo-02-standard-t2v", "negative_prompt": "x"}, "unsupported_parameter",
         "negative_prompt", "does not take 'negative_prompt'"),
        ({"model": "kling-v2-master-t2v", "generate_audio": True}, "unsupported_parameter",
         "generate_audio", "does not take 'generate_audio'"),
        ({"model": "veo3-t2v", "prompt": "p" * 20_001}, "prompt_too_long", "prompt",
         "the limit is 20000"),
        ({"model": "veo3-t2v", "prompt": "p" * 300_000}, "prompt_too_long", "prompt",
         "the limit is 20000"),
        ({"model": "veo3-t2v", "fancy": True}, "unsupported_parameter", "fancy", "'fancy'"),
    ],
)  # fmt: skip
async def test_quote_and_create_refuse_what_the_model_does_not_take_naming_the_field(
    client: httpx.AsyncClient,
    db: asyncpg.Connection,
    body: dict[str, Any],
    code: str,
    field: str,
    detail: str,
) -> None:
    user = await create_user(client, credits=10_000)
    body = {"prompt": "a lighthouse"} | body
    for answer in (await quote(client, user, body), await create(client, user, body)):
        assert answer.status_code == 422, answer.text
        problem = answer.json()
        assert problem["code"] == code and detail in problem["detail"], problem
        assert field in [e["loc"][-1] for e in problem["errors"]], problem
    assert await db.fetchval("SELECT count(*) FROM videos") == 0
    assert await db.fetchval('SELECT "creditBalance" FROM users WHERE id = $1', user.id) == 10_000


async def test_a_value_outside_the_allowed_set_lists_the_allowed_values(
    client: httpx.AsyncClient,
) -> None:
    user = await create_user(client)
    answer = await quote(client, user, {"model": "veo3-t2v", "prompt": "x", "duration": 5})
    (error,) = answer.json()["errors"]
    assert error["loc"] == ["body", "duration"] and error["allowed"] == [4, 6, 8]


async def test_models_list_each_models_parameters_and_every_price_combination(
    client: httpx.AsyncClient,
) -> None:
    user = await create_user(client)
    models = {
        m["id"]: m for m in (await client.get("/api/models", headers=user.auth)).json()["data"]
    }
    veo = models["veo3-t2v"]
    assert veo["parameters"]["generate_audio"] == {
        "type": "boolean", "enum": None, "default": False, "minimum": None, "maximum": None,
        "max_length": None, "required": False,
        "description": veo["parameters"]["generate_audio"]["description"],
    }  # fmt: skip
    assert veo["parameters"]["duration"]["enum"] == [4, 6, 8]
    assert veo["parameters"]["prompt"]["required"] and "image_url" not in veo["parameters"]
    assert "seed" not in models["kling-v2-master-t2v"]["parameters"]
    assert models["ltx-2-fast-i2v"]["parameters"]["image_url"]["required"]
    assert veo["pricing"]["price_parameters"] == ["duration", "generate_audio"]
    combos = {
        (c["options"]["duration"], c["options"]["generate_audio"]): c["credits"]
        for c in veo["pricing"]["combinations"]
    }
    assert combos == {(4, False): 96, (6, False): 144, (8, False): 192,
                      (4, True): 192, (6, True): 288, (8, True): 384}  # fmt: skip
    ltx = models["ltx-2-fast-i2v"]["pricing"]["combinations"]
    assert {"duration": 12, "resolution": "1440p"} not in [c["options"] for c in ltx]
    assert len(ltx) == 14  # 3 resolutions up to 10 s, then 1080p only
    # The existing fields stay.
    assert veo["pricing"]["by_duration"] == {"4": 96, "6": 144, "8": 192}
    assert veo["durations"] == [4, 6, 8] and veo["resolutions"] == ["720p", "1080p"]


async def test_every_combination_listed_is_what_the_quote_says(client: httpx.AsyncClient) -> None:
    user = await create_user(client)
    models = (await client.get("/api/models", headers=user.auth)).json()["data"]
    checked = 0
    for model in models:
        image = {"image_url": IMAGE} if model["requires_image"] else {}
        for combo in model["pricing"]["combinations"]:
            body = {"model": model["id"], "prompt": "x", **image, **combo["options"]}
            answer = await quote(client, user, body)
            assert answer.status_code == 200, (body, answer.text)
            assert answer.json()["credits"] == combo["credits"], body
            checked += 1
    assert checked == 2 + 6 + 6 + 2 + 2 + 2 + 33 + 14 + 4  # Seedance: 11 durations x 3
