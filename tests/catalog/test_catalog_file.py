"""The shipped catalog (app/catalog/catalog.json) parses, agrees with the API's request body,
and a careless edit to it fails validation instead of shipping a broken model."""

import copy
import datetime as dt
import json
import types
from collections.abc import Callable
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import urlsplit

import pydantic
import pytest

from app.catalog.service import CATALOG_FILE, load_catalog
from app.fal.model_spec import Catalog, ModelSpec
from app.videos.schemas import OPTION_FIELDS, VideoCreate

RAW: dict[str, Any] = json.loads(CATALOG_FILE.read_text())
CATALOG = Catalog.model_validate(RAW)
SLUGS = [m.slug for m in CATALOG.models]
PY_TYPES = {"string": str, "integer": int, "number": float, "boolean": bool}


def model(slug: str) -> ModelSpec:
    return next(m for m in CATALOG.models if m.slug == slug)


def body_type(field: str) -> type:
    """The Python type of VideoCreate's optional `field` (`X | None`, `Annotated` unwrapped)."""
    annotation = VideoCreate.model_fields[field].annotation
    assert get_origin(annotation) in (Union, types.UnionType), annotation
    (inner,) = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(inner) is Annotated:
        inner = get_args(inner)[0]
    assert isinstance(inner, type)
    return inner


def test_shipped_catalog_parses() -> None:
    assert load_catalog() == CATALOG  # what the app loads is this file, as validated here
    assert CATALOG.credit_usd == "0.01"
    assert len(SLUGS) == len(set(SLUGS)) == 9
    assert len({m.fal_endpoint for m in CATALOG.models}) == 9


@pytest.mark.parametrize("slug", SLUGS)
def test_model_names_its_fal_source(slug: str) -> None:
    source = model(slug).source
    url = urlsplit(source.url)
    assert url.scheme == "https" and url.hostname == "fal.ai", source.url
    assert isinstance(source.checked, dt.date)
    assert dt.date(2025, 1, 1) <= source.checked <= dt.date.today()


@pytest.mark.parametrize("slug", SLUGS)
def test_parameters_are_video_create_fields_of_the_same_type(slug: str) -> None:
    spec = model(slug)
    assert "duration" in spec.parameters
    for name, parameter in spec.parameters.items():
        assert name in OPTION_FIELDS, f"{slug}.{name} is not a VideoCreate option"
        assert body_type(name) is PY_TYPES[parameter.type], f"{slug}.{name}"
        # Every value the model allows is one the request body lets through.
        values = [*(parameter.choices or []), parameter.default, parameter.minimum]
        values += [parameter.maximum]
        for value in values:
            if value is None:
                continue
            if parameter.type == "integer":
                value = int(value)
            body = VideoCreate.model_validate({"model": slug, "prompt": "p", name: value})
            assert getattr(body, name) == value


@pytest.mark.parametrize("slug", SLUGS)
def test_price_relevant_parameters_have_choices_and_a_default(slug: str) -> None:
    spec = model(slug)
    assert "duration" in spec.price_parameters()
    for name in spec.price_parameters():
        parameter = spec.parameters[name]
        assert parameter.choices, f"{slug}.{name}"
        assert parameter.default is not None, f"{slug}.{name}"
        assert parameter.default in parameter.choices, f"{slug}.{name}"
    # So the defaults alone are a complete, allowed, priced combination.
    defaults = spec.defaults()
    priced = {n: defaults[n] for n in spec.price_parameters()}
    assert priced in list(spec.price_combinations())


@pytest.mark.parametrize("slug", ["veo3-t2v", "veo3-fast-t2v"])
def test_veo_audio_is_off_by_default_though_fal_turns_it_on(slug: str) -> None:
    audio = model(slug).parameters["generate_audio"]
    assert audio.default is False
    assert audio.fal_default is True
    assert model(slug).defaults()["generate_audio"] is False
    assert model(slug).defaults_as_fal_runs()["generate_audio"] is True


# -- a broken edit fails validation --------------------------------------------------------


def entry(data: dict[str, Any], slug: str) -> dict[str, Any]:
    found: dict[str, Any] = next(m for m in data["models"] if m["slug"] == slug)
    return found


def veo_audio_default_yes(data: dict[str, Any]) -> None:
    entry(data, "veo3-t2v")["parameters"]["generate_audio"]["default"] = "yes"


def veo_audio_rate_removed(data: dict[str, Any]) -> None:
    del entry(data, "veo3-t2v")["pricing"]["usd_per_second"]["true"]


def ltx_rate_removed(data: dict[str, Any]) -> None:
    del entry(data, "ltx-2-fast-i2v")["pricing"]["usd_per_second"]["2160p"]


def ltx_constraint_unknown_parameter(data: dict[str, Any]) -> None:
    entry(data, "ltx-2-fast-i2v")["constraints"][0]["require"]["frame_rate"] = [25]


def ltx_constraint_unknown_condition(data: dict[str, Any]) -> None:
    entry(data, "ltx-2-fast-i2v")["constraints"][0]["when"]["length"] = {"minimum": 11}


def kling_duration_default_outside_enum(data: dict[str, Any]) -> None:
    entry(data, "kling-v2.1-pro-i2v")["parameters"]["duration"]["default"] = 7


def hailuo_resolution_without_default(data: dict[str, Any]) -> None:
    del entry(data, "hailuo-02-standard-i2v")["parameters"]["resolution"]["default"]


def veo_priced_by_unknown_option(data: dict[str, Any]) -> None:
    entry(data, "veo3-fast-t2v")["pricing"]["by"] = ["audio"]


def seedance_missing_frame_size(data: dict[str, Any]) -> None:
    del entry(data, "seedance-v1-pro-fast-i2v")["pricing"]["pixels"]["720p"]


def seedance_price_not_decimal(data: dict[str, Any]) -> None:
    entry(data, "seedance-v1-pro-fast-i2v")["pricing"]["usd_per_million_tokens"] = "1e0"


def source_not_on_fal(data: dict[str, Any]) -> None:
    entry(data, "kling-v2-master-t2v")["source"]["url"] = "https://example.com/kling"


def prompt_longer_than_fal_allows(data: dict[str, Any]) -> None:
    entry(data, "kling-v2-master-t2v")["prompt"]["max_length"] = 2501


def unknown_key(data: dict[str, Any]) -> None:
    entry(data, "veo3-t2v")["parameters"]["seed"]["maximun"] = 10


def duplicate_slug(data: dict[str, Any]) -> None:
    data["models"].append(copy.deepcopy(data["models"][0]))


@pytest.mark.parametrize(
    "edit",
    [
        veo_audio_default_yes,
        veo_audio_rate_removed,
        ltx_rate_removed,
        ltx_constraint_unknown_parameter,
        ltx_constraint_unknown_condition,
        kling_duration_default_outside_enum,
        hailuo_resolution_without_default,
        veo_priced_by_unknown_option,
        seedance_missing_frame_size,
        seedance_price_not_decimal,
        source_not_on_fal,
        prompt_longer_than_fal_allows,
        unknown_key,
        duplicate_slug,
    ],
)
def test_broken_edit_fails_validation(edit: Callable[[dict[str, Any]], None]) -> None:
    data = copy.deepcopy(RAW)
    edit(data)
    assert data != RAW
    with pytest.raises(pydantic.ValidationError):
        Catalog.model_validate(data)
    with pytest.raises(pydantic.ValidationError):  # as the app and simulator read the file
        Catalog.model_validate_json(json.dumps(data))
