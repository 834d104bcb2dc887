"""Text that PostgreSQL can store: its `text` type refuses U+0000, so refuse it at the door."""

from typing import Annotated

from pydantic import AfterValidator


def _reject_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain the NUL character (U+0000)")
    return value


Text = Annotated[str, AfterValidator(_reject_nul)]
