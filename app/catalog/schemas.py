import math
from fractions import Fraction

from pydantic import BaseModel, Field

from app.catalog.pricing import credits_for, price_table
from app.fal.model_spec import FieldType, ModelKind, ModelSpec, Scalar


class ParameterPublic(BaseModel):
    """One request field a model takes: enough to render its form control."""

    type: FieldType
    enum: list[Scalar] | None = None
    default: Scalar | None = None
    minimum: float | None = None
    maximum: float | None = None
    max_length: int | None = None
    required: bool = False
    description: str = ""


class PriceCombination(BaseModel):
    options: dict[str, Scalar] = Field(description="the price-relevant options")
    credits: int


class Pricing(BaseModel):
    credits_per_second: int = Field(description="at the default options, rounded up")
    credit_usd: float
    margin_percent: int
    by_duration: dict[str, int] = Field(
        description="credits per allowed duration (s) at the default options"
    )
    price_parameters: list[str] = Field(description="the options the price depends on")
    combinations: list[PriceCombination] = Field(
        description="credits of every allowed combination of `price_parameters`"
    )


class ModelPublic(BaseModel):
    id: str = Field(description="the model's slug: what POST /api/videos takes as `model`")
    name: str
    kind: ModelKind
    fal_endpoint: str
    pricing: Pricing
    parameters: dict[str, ParameterPublic] = Field(
        description="every request field this model accepts besides `model`"
    )
    durations: list[int]
    aspect_ratios: list[str]
    resolutions: list[str]
    max_prompt_length: int
    requires_image: bool

    @classmethod
    def of(cls, spec: ModelSpec, *, margin_percent: int, credit_usd: Fraction) -> "ModelPublic":
        def credits(**changes: Scalar) -> int:
            return credits_for(spec, spec.defaults() | changes, margin_percent=margin_percent,
                               credit_usd=credit_usd)  # fmt: skip

        durations = [int(d) for d in spec.parameters["duration"].enum or []]
        default_duration = int(spec.parameters["duration"].default or durations[0])
        return cls(
            id=spec.slug,
            name=spec.name,
            kind=spec.kind,
            fal_endpoint=spec.fal_endpoint,
            pricing=Pricing(
                credits_per_second=math.ceil(credits() / default_duration),
                credit_usd=float(credit_usd),
                margin_percent=margin_percent,
                by_duration={str(d): credits(duration=d) for d in durations},
                price_parameters=spec.price_parameters(),
                combinations=[
                    PriceCombination(options=combo, credits=n)
                    for combo, n in price_table(
                        spec, margin_percent=margin_percent, credit_usd=credit_usd
                    )
                ],
            ),
            parameters=_parameters(spec),
            durations=durations,
            aspect_ratios=[str(v) for v in _enum(spec, "aspect_ratio")],
            resolutions=[str(v) for v in _enum(spec, "resolution")],
            max_prompt_length=spec.prompt.max_length,
            requires_image=spec.kind == "image-to-video",
        )


def _enum(spec: ModelSpec, name: str) -> list[Scalar]:
    parameter = spec.parameters.get(name)
    return list(parameter.enum or []) if parameter else []


def _parameters(spec: ModelSpec) -> dict[str, ParameterPublic]:
    fields = {
        "prompt": ParameterPublic(
            type="string", max_length=spec.prompt.max_length, required=True,
            description="what the video shows",
        ),
    }  # fmt: skip
    if spec.kind == "image-to-video":
        fields["image_url"] = ParameterPublic(
            type="string", required=True,
            description="the first frame: an https URL, a data: image URI, or an upload's url",
        )  # fmt: skip
    for name, p in spec.parameters.items():
        fields[name] = ParameterPublic(
            type=p.type, enum=p.enum, default=p.default, minimum=p.minimum, maximum=p.maximum,
            max_length=p.max_length, description=p.description,
        )  # fmt: skip
    return fields


class ModelsList(BaseModel):
    """Every model on sale, in one page: the list envelope every list shares."""

    data: list[ModelPublic]
    next_cursor: str | None = Field(default=None, description="always null: one page")
