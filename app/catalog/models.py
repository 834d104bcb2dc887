import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlmodel import Field, SQLModel

from app.core.columns import column, timestamp_column, utcnow


class CatalogModel(SQLModel, table=True):
    """A row of the `models` table: one Fal video model we sell.

    `spec` is the model's entry of app/catalog/catalog.json (app.fal.model_spec.ModelSpec):
    the fields, defaults and pricing rule every request is checked and priced by. The other
    columns are derived from it at sync, for readers of the table (the shared schema).
    """

    __tablename__ = "models"

    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    slug: str
    name: str
    fal_endpoint: str = column("falEndpoint")
    kind: str
    credits_per_second: int = column("creditsPerSecond")
    durations: list[int] = Field(sa_type=ARRAY(Integer))
    duration_format: str = column("durationFormat", default="{n}")
    aspect_ratios: list[str] = column("aspectRatios", sa_type=ARRAY(Text), default_factory=list)
    resolutions: list[str] = Field(sa_type=ARRAY(Text), default_factory=list)
    max_prompt_length: int = column("maxPromptLength")
    spec: dict[str, Any] | None = Field(default=None, sa_type=JSONB(none_as_null=True))
    active: bool = True
    created_at: datetime = timestamp_column("createdAt", default_factory=utcnow)
    updated_at: datetime = timestamp_column("updatedAt", default_factory=utcnow)
