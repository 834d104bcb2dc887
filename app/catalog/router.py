from fastapi import APIRouter

from app.catalog import service
from app.catalog.schemas import ModelPublic, ModelsList
from app.core.deps import SessionDep
from app.core.errors import Unauthorized, problem_responses
from app.users.deps import CurrentUser

router = APIRouter(tags=["models"])


@router.get("/api/models", response_model=ModelsList, responses=problem_responses(Unauthorized))
async def list_models(session: SessionDep, _: CurrentUser) -> ModelsList:
    """Active models with their prices (in credits) and input limits."""
    credit_usd = service.load_catalog().credit_usd
    return ModelsList(
        data=[ModelPublic.of(m, credit_usd) for m in await service.list_active(session)]
    )
