"""Reading what a database error was about, from the asyncpg error SQLAlchemy wraps."""

from sqlalchemy.exc import DBAPIError

LOCK_NOT_AVAILABLE = "55P03"


def _cause(error: DBAPIError) -> object:
    return getattr(error.orig, "__cause__", None)


def violated_constraint(error: DBAPIError) -> str | None:
    """The name of the constraint an IntegrityError violated."""
    name = getattr(_cause(error), "constraint_name", None)
    return name if isinstance(name, str) else None


def sqlstate(error: DBAPIError) -> str | None:
    code = getattr(_cause(error), "sqlstate", None)
    return code if isinstance(code, str) else None
