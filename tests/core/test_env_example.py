"""`.env.example` lists every setting, with its default, and nothing else
(regenerate it with scripts/env_example.py)."""

import importlib.util
import re
from types import ModuleType

from pydantic import AliasChoices

from app.core.config import PROJECT_ROOT, Settings

LINE = re.compile(r"^# ([A-Z][A-Z0-9_]*)=(.*)$")


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "env_example", PROJECT_ROOT / "scripts" / "env_example.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def listed() -> dict[str, str]:
    text = (PROJECT_ROOT / ".env.example").read_text()
    return {m[1]: m[2] for line in text.splitlines() if (m := LINE.match(line))}


def names_read(name: str) -> set[str]:
    """Every environment name a field is read from: its own, and its aliases."""
    alias = Settings.model_fields[name].validation_alias
    aliases = alias.choices if isinstance(alias, AliasChoices) else [alias] if alias else []
    return {name.upper(), *(str(a).upper() for a in aliases)}


def test_env_example_lists_every_setting_and_only_settings() -> None:
    variables = listed()
    missing = [name.upper() for name in Settings.model_fields if name.upper() not in variables]
    assert not missing, f"missing from .env.example (run scripts/env_example.py): {missing}"
    known = set().union(*(names_read(name) for name in Settings.model_fields))
    unknown = sorted(set(variables) - known)
    assert not unknown, f".env.example lists what no setting reads: {unknown}"


def test_env_example_shows_each_default() -> None:
    variables, render_default = listed(), generator().render_default
    stale = {
        name.upper(): (variables.get(name.upper()), render_default(field))
        for name, field in Settings.model_fields.items()
        if variables.get(name.upper()) != render_default(field)
    }
    assert not stale, f"(listed, actual) defaults differ; run scripts/env_example.py: {stale}"
