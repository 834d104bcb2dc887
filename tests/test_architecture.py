"""The structure docs/architecture.md describes, checked: SQL lives only in repositories, and
dependencies point one way (import-linter, configured in pyproject.toml)."""

import ast
import re
import subprocess
import sys
from pathlib import Path

from app.core.config import PROJECT_ROOT

APP = PROJECT_ROOT / "app"
# Statements as we write them: upper-case keywords opening a statement or a CTE.
SQL = re.compile(
    r"\b(SELECT\s+[\w\"*(]|INSERT\s+INTO|UPDATE\s+\"|DELETE\s+FROM|CREATE\s+(TABLE|DATABASE|INDEX)"
    r"|ALTER\s+TABLE|DROP\s+(TABLE|DATABASE)|VACUUM(\s+ANALYZE)?\s+\"|WITH\s+\w+\s+AS\s*\("
    r"|SET\s+LOCAL)"
)
# The credits domain's SQL fragments, composed by the repositories that move money.
FRAGMENTS = {APP / "credits" / "ledger.py"}


def is_repository(path: Path) -> bool:
    return path.name == "repository.py" or path.name.endswith("_repository.py")


def sql_strings(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    found = []
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and id(node) not in docstrings
            and SQL.search(node.value)
        ):
            found.append((node.lineno, node.value.strip().splitlines()[0][:80]))
    return found


def test_sql_text_lives_only_in_repository_modules() -> None:
    offenders = [
        f"{path.relative_to(PROJECT_ROOT)}:{line}: {text}"
        for path in sorted(APP.rglob("*.py"))
        if not is_repository(path) and path not in FRAGMENTS
        for line, text in sql_strings(path)
    ]
    assert not offenders, "SQL outside a repository module:\n" + "\n".join(offenders)


def test_the_sql_finder_finds_sql(tmp_path: Path) -> None:
    module = tmp_path / "service.py"
    module.write_text('"""SELECT in a docstring is prose."""\nQ = \'SELECT "id" FROM "users"\'\n')
    assert sql_strings(module) == [(2, 'SELECT "id" FROM "users"')]


def test_dependencies_point_one_way() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
