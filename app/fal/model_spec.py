"""A model as Fal runs it: its request fields, their types and defaults, and Fal's pricing rule.

Written in app/catalog/catalog.json, transcribed from each model's page on fal.ai (the entry
names the page and the date it was checked; docs/fal.md says how). Three readers share it:
the API validates requests and prices them (`normalise`, `fal_cost_usd`), the dispatcher
builds Fal's input in Fal's own types (`fal_input`), and the Fal simulator refuses what the
same schema refuses (`fal_input_errors`). Money is exact: prices are decimal strings read
into `Fraction`s (integer numerator and denominator), never floats.
"""

import itertools
from collections.abc import Iterator
from datetime import date
from fractions import Fraction
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scalar = str | int | float | bool
FieldType = Literal["string", "integer", "number", "boolean"]
ModelKind = Literal["text-to-video", "image-to-video"]
Usd = Annotated[str, Field(pattern=r"^\d+(\.\d+)?$", description="US dollars, exact decimal")]

# What each JSON type accepts. bool is an int subclass in Python: never a number here.
PYTHON_TYPES: dict[FieldType, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}


def has_type(value: Any, kind: FieldType) -> bool:
    if isinstance(value, bool) and kind != "boolean":
        return False
    return isinstance(value, PYTHON_TYPES[kind])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Source(_Strict):
    url: str = Field(pattern=r"^https://fal\.ai/", description="Fal's page the facts come from")
    checked: date
    also: list[str] = Field(default_factory=list, description="further pages read")
    notes: str = ""


class PromptSpec(_Strict):
    max_length: int = Field(gt=0, description="the limit we apply")
    fal_max_length: int | None = Field(
        default=None, description="Fal's published limit; null when Fal publishes none"
    )
    note: str = ""

    @model_validator(mode="after")
    def _within_fal(self) -> "PromptSpec":
        if self.fal_max_length is not None and self.max_length > self.fal_max_length:
            raise ValueError("max_length must not exceed Fal's published fal_max_length")
        if self.fal_max_length is None and not self.note:
            raise ValueError("say in `note` that Fal publishes no limit, and why ours")
        return self


class ParameterSpec(_Strict):
    """One request field. `type` is ours (the API's); Fal's may differ (`fal_type`)."""

    type: FieldType
    enum: list[Scalar] | None = None
    default: Scalar | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    fal_type: FieldType | None = Field(
        default=None, description='Fal\'s type when it is not ours, e.g. duration 5 ➜ "5"'
    )
    fal_format: str = Field(default="{}", description="how a value is spelled for Fal")
    fal_default: Scalar | None = Field(
        default=None, description="Fal's default, where ours differs (we always send ours)"
    )
    description: str = ""

    @property
    def choices(self) -> list[Scalar] | None:
        """The closed set of values, if any (a boolean's is both)."""
        return [False, True] if self.type == "boolean" else self.enum

    @property
    def wire_type(self) -> FieldType:
        return self.fal_type or self.type

    def to_fal(self, value: Scalar) -> Scalar:
        if self.fal_type == "string":
            return self.fal_format.format(value)
        return value

    def fal_enum(self) -> list[Scalar] | None:
        return None if self.enum is None else [self.to_fal(v) for v in self.enum]

    def value_errors(self, value: Any, wire: bool = False) -> str | None:
        """Why `value` is not acceptable (None when it is), in our types or Fal's (`wire`)."""
        kind = self.wire_type if wire else self.type
        enum = self.fal_enum() if wire else self.enum
        if not has_type(value, kind):
            return f"must be {'an' if kind == 'integer' else 'a'} {kind}"
        if enum is not None and value not in enum:
            return "must be one of " + ", ".join(map(str, enum))
        if self.minimum is not None and value < self.minimum:
            return f"must be at least {self.minimum:g}"
        if self.maximum is not None and value > self.maximum:
            return f"must be at most {self.maximum:g}"
        if self.max_length is not None and len(value) > self.max_length:
            return f"must be at most {self.max_length} characters"
        return None

    @model_validator(mode="after")
    def _default_is_valid(self) -> "ParameterSpec":
        for name, value in (("default", self.default), ("fal_default", self.fal_default)):
            if value is not None and (problem := self.value_errors(value)):
                raise ValueError(f"{name} {value!r} {problem}")
        return self


class Condition(_Strict):
    minimum: float | None = None
    maximum: float | None = None
    any_of: list[Scalar] | None = None

    def holds(self, value: Any) -> bool:
        if self.any_of is not None and value not in self.any_of:
            return False
        if self.minimum is not None and not value >= self.minimum:
            return False
        return self.maximum is None or value <= self.maximum


class Constraint(_Strict):
    """A combination Fal forbids: when every `when` holds, each `require` field is in its list."""

    when: dict[str, Condition]
    require: dict[str, list[Scalar]]
    message: str

    def broken_by(self, options: dict[str, Any]) -> bool:
        if not all(name in options and c.holds(options[name]) for name, c in self.when.items()):
            return False
        return bool(self.offending(options))

    def offending(self, options: dict[str, Any]) -> list[str]:
        """The `require` fields whose values the rule does not allow."""
        return [n for n, allowed in self.require.items() if options.get(n) not in allowed]


# -- pricing rules, in Fal's own terms ----------------------------------------------------------


class PerSecond(_Strict):
    """USD per second of output, by the values of `by` (joined with ',' as the table key)."""

    rule: Literal["per_second"]
    by: list[str] = Field(default_factory=list)
    usd_per_second: dict[str, Usd]

    def key(self, options: dict[str, Any]) -> str:
        return ",".join(_spelled(options[name]) for name in self.by)

    def cost(self, options: dict[str, Any]) -> Fraction:
        return Fraction(self.usd_per_second[self.key(options)]) * int(options["duration"])

    def price_parameters(self) -> list[str]:
        return ["duration", *self.by]


class BasePlusExtraSeconds(_Strict):
    """A clip of `base_seconds` for `base_usd`, each further second `extra_usd_per_second`."""

    rule: Literal["base_plus_extra_seconds"]
    base_seconds: int = Field(gt=0)
    base_usd: Usd
    extra_usd_per_second: Usd

    def cost(self, options: dict[str, Any]) -> Fraction:
        extra = max(0, int(options["duration"]) - self.base_seconds)
        return Fraction(self.base_usd) + Fraction(self.extra_usd_per_second) * extra

    def price_parameters(self) -> list[str]:
        return ["duration"]


class VideoTokens(_Strict):
    """Video tokens = width x height x fps x seconds / 1024, at `usd_per_million_tokens`.

    `pixels[resolution][aspect_ratio]` = [width, height]. Fal publishes neither the frame
    sizes nor the fps, and bills the tokens of the output it made; so every aspect ratio of a
    resolution (and `auto`, which follows the input image) is priced as that resolution's
    largest known frame: the price never depends on a size we could have wrong.
    """

    rule: Literal["video_tokens"]
    usd_per_million_tokens: Usd
    fps: int = Field(gt=0)
    pixels: dict[str, dict[str, tuple[int, int]]]

    def frame(self, options: dict[str, Any]) -> int:
        return max(w * h for w, h in self.pixels[options["resolution"]].values())

    def cost(self, options: dict[str, Any]) -> Fraction:
        tokens = Fraction(self.frame(options) * self.fps * int(options["duration"]), 1024)
        return tokens * Fraction(self.usd_per_million_tokens) / 1_000_000

    def price_parameters(self) -> list[str]:
        return ["duration", "resolution"]


PricingRule = Annotated[PerSecond | BasePlusExtraSeconds | VideoTokens, Field(discriminator="rule")]


def _spelled(value: Scalar) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


# -- the model ---------------------------------------------------------------------------------


class ModelSpec(_Strict):
    """One model we sell, as catalog.json states it."""

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str
    fal_endpoint: str
    kind: ModelKind
    source: Source
    prompt: PromptSpec
    parameters: dict[str, ParameterSpec]
    constraints: list[Constraint] = Field(default_factory=list)
    pricing: PricingRule

    @model_validator(mode="after")
    def _consistent(self) -> "ModelSpec":
        duration = self.parameters.get("duration")
        if duration is None or duration.type != "integer" or not duration.enum:
            raise ValueError("`duration` must be an integer parameter with an enum (seconds)")
        for name in self.price_parameters():
            spec = self.parameters.get(name)
            if spec is None or spec.choices is None or spec.default is None:
                # What we price must be what Fal runs: every price-relevant option is a
                # closed set with a default that we always send.
                raise ValueError(f"price-relevant parameter {name!r} needs an enum and a default")
        if isinstance(self.pricing, PerSecond):
            for combo in self.price_combinations():
                if self.pricing.key(combo) not in self.pricing.usd_per_second:
                    raise ValueError(f"no per-second price for {self.pricing.key(combo)!r}")
        if isinstance(self.pricing, VideoTokens):
            missing = set(self.parameters["resolution"].enum or []) - set(self.pricing.pixels)
            if missing:
                raise ValueError(f"no frame sizes for resolution(s) {sorted(missing)}")
        for constraint in self.constraints:
            for name in [*constraint.when, *constraint.require]:
                if name not in self.parameters:
                    raise ValueError(f"constraint names unknown parameter {name!r}")
        return self

    def price_parameters(self) -> list[str]:
        return self.pricing.price_parameters()

    def price_combinations(self) -> Iterator[dict[str, Scalar]]:
        """Every allowed combination of the price-relevant options (forbidden ones left out)."""
        names = self.price_parameters()
        enums = [self.parameters[name].choices or [] for name in names]
        defaults = self.defaults()
        for values in itertools.product(*enums):
            combo = dict(zip(names, values, strict=True))
            if not any(c.broken_by(defaults | combo) for c in self.constraints):
                yield combo

    def defaults(self) -> dict[str, Scalar]:
        return {n: p.default for n, p in self.parameters.items() if p.default is not None}

    def fal_cost_usd(self, options: dict[str, Any]) -> Fraction:
        """What Fal bills for a successful run with these (normalised) options."""
        return self.pricing.cost(options)

    def fal_input(
        self, prompt: str, image_url: str | None, options: dict[str, Any]
    ) -> dict[str, Any]:
        """The request body Fal expects, every option spelled in Fal's type."""
        body: dict[str, Any] = {"prompt": prompt}
        if image_url is not None:
            body["image_url"] = image_url
        for name, value in options.items():
            body[name] = self.parameters[name].to_fal(value)
        return body

    def fal_input_errors(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        """What Fal's validation would say about `body` (FastAPI's `detail` items); [] if valid.

        Stricter than Fal in one way: an unknown field is refused here, where Fal's apps
        may ignore it, so that a field we send by mistake fails our tests.
        """
        errors: list[dict[str, Any]] = []

        def error(field: str, msg: str, kind: str, value: Any = None) -> None:
            errors.append({"loc": ["body", field], "msg": msg, "type": kind, "input": value})

        for name in ("prompt", "image_url"):
            required = name == "prompt" or self.kind == "image-to-video"
            if name not in body:
                if required:
                    error(name, "Field required", "missing")
            elif not isinstance(body[name], str):
                error(name, "Input should be a valid string", "string_type", body[name])
            elif not required:
                error(name, "Extra inputs are not permitted", "extra_forbidden", body[name])
        prompt = body.get("prompt")
        limit = self.prompt.fal_max_length
        if isinstance(prompt, str) and limit is not None and len(prompt) > limit:
            error("prompt", f"at most {limit} characters", "too_long")
        options: dict[str, Any] = {}
        for name, value in body.items():
            if name in ("prompt", "image_url"):
                continue
            spec = self.parameters.get(name)
            if spec is None:
                error(name, "Extra inputs are not permitted", "extra_forbidden", value)
            elif problem := spec.value_errors(value, wire=True):
                error(name, f"Input {problem}", "value_error", value)
            else:
                options[name] = self._from_fal(spec, value)
        if not errors:
            merged = self.defaults_as_fal_runs() | options
            for constraint in self.constraints:
                if constraint.broken_by(merged):
                    for name in constraint.offending(merged):
                        error(name, constraint.message, "value_error", merged.get(name))
        return errors

    def defaults_as_fal_runs(self) -> dict[str, Scalar]:
        """The options Fal applies when a field is left out: its own defaults."""
        values: dict[str, Scalar] = {}
        for name, spec in self.parameters.items():
            default = spec.fal_default if spec.fal_default is not None else spec.default
            if default is not None:
                values[name] = default
        return values

    @staticmethod
    def _from_fal(spec: ParameterSpec, value: Any) -> Scalar:
        if spec.fal_type == "string" and spec.enum is not None:
            return spec.enum[spec.fal_enum().index(value)]  # type: ignore[union-attr]
        return value  # type: ignore[no-any-return]


class Catalog(_Strict):
    version: int
    credit_usd: Usd
    models: list[ModelSpec]

    @model_validator(mode="after")
    def _unique_slugs(self) -> "Catalog":
        slugs = [m.slug for m in self.models]
        if len(slugs) != len(set(slugs)):
            raise ValueError("model slugs must be unique")
        return self
