"""Every catalog model's request schema, as the Fal simulator enforces it, through the real
fal-client: what we send is accepted, and what Fal's schema forbids is refused with 422.

The simulator validates each submission with the model's own `fal_input_errors` (from
app/catalog/catalog.json); fal-client runs in a child process (tests/support/fal_driver.py),
one run per test, every submission of the test batched into it.
"""

from typing import Any

from app.catalog.service import CATALOG_FILE
from app.fal.model_spec import Catalog, ModelSpec, Scalar
from app.fal.simulator import SimulatorProcess
from tests.support.helpers import run_fal as run_driver

CATALOG = Catalog.model_validate_json(CATALOG_FILE.read_bytes())
MODELS = {spec.slug: spec for spec in CATALOG.models}
IMAGE_URL = "https://example.com/cat.png"
PROMPT = "a cat walks along a sunlit wall"


def run_fal(sim: SimulatorProcess, steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The shared driver run, one result per step."""
    results = run_driver(sim, steps)
    assert len(results) == len(steps)
    return results


def image(spec: ModelSpec) -> str | None:
    return IMAGE_URL if spec.kind == "image-to-video" else None


def body(spec: ModelSpec, **options: Scalar) -> dict[str, Any]:
    """Fal's input for `spec` at its defaults, with `options` (in our types) over them."""
    return spec.fal_input(PROMPT, image(spec), spec.defaults() | options)


def forbidden(spec: ModelSpec, options: dict[str, Scalar]) -> bool:
    return any(c.broken_by(spec.defaults() | options) for c in spec.constraints)


def valid_inputs() -> list[tuple[str, ModelSpec, dict[str, Any]]]:
    """(label, model, Fal input): defaults, each choice's first and last, each bound."""
    cases = []
    for spec in CATALOG.models:
        cases.append((f"{spec.slug} defaults", spec, body(spec)))
        for name, parameter in spec.parameters.items():
            values: list[Scalar] = []
            if parameter.choices:
                values += [parameter.choices[0], parameter.choices[-1]]
            for bound in (parameter.minimum, parameter.maximum):
                if bound is not None:
                    values.append(int(bound) if parameter.type == "integer" else bound)
            if parameter.max_length is not None:
                values.append("x" * parameter.max_length)
            for value in values:
                if forbidden(spec, {name: value}):
                    continue  # a combination Fal refuses: see test_forbidden_combination_...
                label = f"{spec.slug} {name}={str(value)[:20]}"
                cases.append((label, spec, body(spec, **{name: value})))
        longest = "p" * (spec.prompt.fal_max_length or spec.prompt.max_length)
        cases.append((f"{spec.slug} longest prompt", spec, body(spec) | {"prompt": longest}))
    return cases


def submit_step(spec: ModelSpec, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"op": "submit", "app": spec.fal_endpoint, "arguments": arguments}


def test_every_model_accepts_what_we_send(simulator: SimulatorProcess) -> None:
    cases = valid_inputs()
    # Defaults, both ends of every enum and boolean, every bound: a real sweep of each model.
    assert len(cases) > 6 * len(CATALOG.models)
    assert {spec.slug for _, spec, _ in cases} == set(MODELS)
    results = run_fal(simulator, [submit_step(spec, args) for _, spec, args in cases])

    refused = [
        (label, r["error"]) for (label, _, _), r in zip(cases, results, strict=True) if "error" in r
    ]
    assert refused == []
    assert all(r["request_id"] for r in results)

    # The simulator saw exactly these inputs, each at its model's endpoint, and took them all.
    records = simulator.submissions()["submissions"]
    assert len(records) == len(cases)
    for (label, spec, args), result, record in zip(cases, results, records, strict=True):
        assert record["app_id"] == spec.fal_endpoint, label
        assert record["input"] == args, label
        assert record["request_id"] == result["request_id"] and not record["rejected"], label


def test_our_defaults_are_sent_in_fal_types() -> None:
    """Spot checks of the spelling the sweep above relies on (duration "5", "8s", 6)."""
    assert body(MODELS["kling-v2.1-standard-i2v"])["duration"] == "5"
    assert body(MODELS["veo3-t2v"])["duration"] == "8s"
    assert body(MODELS["veo3-t2v"])["generate_audio"] is False
    assert body(MODELS["ltx-2-fast-i2v"])["duration"] == 6
    assert body(MODELS["kling-v2-master-t2v"]).get("image_url") is None
    assert body(MODELS["seedance-v1-pro-fast-i2v"])["image_url"] == IMAGE_URL


def refusals() -> list[tuple[str, ModelSpec, dict[str, Any], str]]:
    """(label, model, Fal input, the field the refusal must name)."""
    kling = MODELS["kling-v2.1-standard-i2v"]
    master = MODELS["kling-v2-master-t2v"]
    veo = MODELS["veo3-t2v"]
    ltx = MODELS["ltx-2-fast-i2v"]
    seedance = MODELS["seedance-v1-pro-fast-i2v"]
    hailuo = MODELS["hailuo-02-standard-i2v"]
    cases = [
        ("kling duration 7", kling, body(kling) | {"duration": "7"}, "duration"),
        ("kling duration as integer", kling, body(kling) | {"duration": 5}, "duration"),
        ("veo duration 8 not 8s", veo, body(veo) | {"duration": 8}, "duration"),
        ("veo duration '8'", veo, body(veo) | {"duration": "8"}, "duration"),
        ("ltx duration as string", ltx, body(ltx) | {"duration": "6"}, "duration"),
        ("ltx duration 7", ltx, body(ltx) | {"duration": 7}, "duration"),
        ("seed on kling", master, body(master) | {"seed": 1}, "seed"),
        ("negative_prompt on ltx", ltx, body(ltx) | {"negative_prompt": "blur"}, "negative_prompt"),
        ("image on a t2v model", master, body(master) | {"image_url": IMAGE_URL}, "image_url"),
        ("audio as a string", veo, body(veo) | {"generate_audio": "true"}, "generate_audio"),
        ("cfg_scale above 1", kling, body(kling) | {"cfg_scale": 1.5}, "cfg_scale"),
        ("cfg_scale as a bool", kling, body(kling) | {"cfg_scale": True}, "cfg_scale"),
        ("negative seed", veo, body(veo) | {"seed": -1}, "seed"),
        ("hailuo 1080P", hailuo, body(hailuo) | {"resolution": "1080P"}, "resolution"),
        ("seedance 2:1", seedance, body(seedance) | {"aspect_ratio": "2:1"}, "aspect_ratio"),
        ("no prompt", veo, {k: v for k, v in body(veo).items() if k != "prompt"}, "prompt"),
        ("prompt too long", veo, body(veo) | {"prompt": "p" * 20_001}, "prompt"),
        (
            "long negative prompt",
            kling,
            body(kling) | {"negative_prompt": "n" * 2501},
            "negative_prompt",
        ),
        # Fal runs over 10 s only at 1080p: a 12 s video at 1440p is refused.
        ("ltx 12 s at 1440p", ltx, body(ltx, duration=12, resolution="1440p"), "resolution"),
    ]
    for spec in CATALOG.models:
        if spec.kind == "image-to-video":
            without = {k: v for k, v in body(spec).items() if k != "image_url"}
            cases.append((f"{spec.slug} without image", spec, without, "image_url"))
    return cases


def test_what_fal_forbids_is_refused_with_422(simulator: SimulatorProcess) -> None:
    cases = refusals()
    assert sum(1 for _, spec, _, _ in cases if spec.kind == "image-to-video") >= 5
    results = run_fal(simulator, [submit_step(spec, args) for _, spec, args, _ in cases])

    for (label, _, _, field), result in zip(cases, results, strict=True):
        assert "error" in result, f"{label}: accepted as {result}"
        error = result["error"]
        assert error["type"] == "FalClientHTTPError", label
        assert error["status_code"] == 422, label
        detail = error["body"]["detail"]
        assert isinstance(detail, list) and detail, label
        assert [item["loc"] for item in detail] == [["body", field]], f"{label}: {detail}"
        assert all(isinstance(item["msg"], str) and item["msg"] for item in detail), label

    # Each was recorded as refused, and none became a job.
    stats = simulator.stats()
    assert stats["submissions"] == stats["rejected"] == len(cases)
    assert stats["accepted"] == 0 and simulator.jobs() == []


def test_forbidden_combination_is_left_out_of_the_sweep() -> None:
    """The sweep skips exactly what the constraint forbids, and LTX forbids long high-res."""
    ltx = MODELS["ltx-2-fast-i2v"]
    assert forbidden(ltx, {"duration": 12, "resolution": "1440p"})
    assert forbidden(ltx, {"duration": 20, "fps": 50})
    assert not forbidden(ltx, {"duration": 10, "resolution": "2160p", "fps": 50})
    assert not forbidden(ltx, {"duration": 20})  # at the defaults: 1080p, 25 fps
    assert not any(forbidden(s, {}) for s in CATALOG.models)


def test_constraint_refusal_names_the_offending_field() -> None:
    """LTX at 12 s refuses 50 fps (at 1080p): the refusal must name fps, not resolution."""
    ltx = MODELS["ltx-2-fast-i2v"]
    at_fps = ltx.fal_input_errors(body(ltx, duration=12, fps=50))
    assert [item["loc"] for item in at_fps] == [["body", "fps"]], at_fps
    at_resolution = ltx.fal_input_errors(body(ltx, duration=12, resolution="2160p"))
    assert [item["loc"] for item in at_resolution] == [["body", "resolution"]], at_resolution
