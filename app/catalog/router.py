from fractions import Fraction

from fastapi import APIRouter

from app.catalog import service
from app.catalog.schemas import ModelPublic, ModelsList
from app.core.deps import SessionDep, SettingsDep
from app.core.errors import Unauthorized, problem_responses
from app.users.deps import CurrentUser

router = APIRouter(tags=["models"])


@router.get("/api/models", response_model=ModelsList, responses=problem_responses(Unauthorized))
async def list_models(session: SessionDep, settings: SettingsDep, _: CurrentUser) -> ModelsList:
    """Models on sale: every request field each takes, and the credits of each price option."""
    credit_usd = Fraction(service.load_catalog().credit_usd)
    return ModelsList(
        data=[
            ModelPublic.of(
                offer.spec, margin_percent=settings.price_margin_percent, credit_usd=credit_usd
            )
            for offer in await service.list_active(session)
        ]
    )
