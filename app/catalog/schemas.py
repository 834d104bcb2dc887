from typing import Literal

from pydantic import BaseModel, Field

from app.catalog.models import CatalogModel

ModelKind = Literal["text-to-video", "image-to-video"]


class CatalogEntry(BaseModel):
    """One model as written in catalog.json."""

    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    name: str
    fal_endpoint: str
    kind: ModelKind
    credits_per_second: int = Field(gt=0)
    durations: list[int] = Field(min_length=1)
    duration_format: str = Field(pattern=r"\{n\}")
    aspect_ratios: list[str]
    resolutions: list[str]
    max_prompt_length: int = Field(gt=0)


class Catalog(BaseModel):
    version: int
    credit_usd: float
    models: list[CatalogEntry]


class Pricing(BaseModel):
    credits_per_second: int
    credit_usd: float
    by_duration: dict[str, int] = Field(description="credits charged per allowed duration (s)")


class ModelPublic(BaseModel):
    id: str = Field(description="the model's slug: what POST /api/videos takes as `model`")
    name: str
    kind: ModelKind
    fal_endpoint: str
    pricing: Pricing
    durations: list[int]
    aspect_ratios: list[str]
    resolutions: list[str]
    max_prompt_length: int
    requires_image: bool

    @classmethod
    def of(cls, model: CatalogModel, credit_usd: float) -> "ModelPublic":
        return cls(
            id=model.slug,
            name=model.name,
            kind=model.kind,
            fal_endpoint=model.fal_endpoint,
            pricing=Pricing(
                credits_per_second=model.credits_per_second,
                credit_usd=credit_usd,
                by_duration={str(d): d * model.credits_per_second for d in model.durations},
            ),
            durations=model.durations,
            aspect_ratios=model.aspect_ratios,
            resolutions=model.resolutions,
            max_prompt_length=model.max_prompt_length,
            requires_image=model.kind == "image-to-video",
        )


class ModelsList(BaseModel):
    data: list[ModelPublic]
