"""The house rules of the layout: app dependencies run one way, services never import tasks,
modules stay short unless they say why."""

import ast
import re
from pathlib import Path

import pytest
from django.apps import apps

ROOT = Path(__file__).resolve().parent.parent
# Each app may import only the apps listed for it (and itself).
ALLOWED = {
    "pools": set(),
    "imports": {"pools"},
    "notifications": {"pools", "imports"},
}


def imported_modules(path: Path) -> set[str]:
    """Return the absolute module names a file imports, wherever in the file (inside functions
    too)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
                names.add(module)
                names.update(f"{module}.{alias.name}" for alias in node.names)
            else:
                names.add(node.module)
    return names


# Every Python package of the project, for the length rule (the settings' package too).
PROJECT_PACKAGES = (*sorted(ALLOWED), "promo_project")
MAX_MODULE_LINES = 450
# A line of the module docstring that begins with these words and goes on to give the reason.
LONG_BECAUSE = re.compile(r"^\s*Long because \S", re.MULTILINE)


def app_files(app: str):
    return [p for p in (ROOT / app).rglob("*.py") if "migrations" not in p.parts]


@pytest.mark.parametrize("app", sorted(ALLOWED))
def test_apps_import_only_the_apps_below_them(app):
    upward = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in app_files(app)
        for name in imported_modules(path)
        if name.split(".")[0] in ALLOWED
        and name.split(".")[0] != app
        and name.split(".")[0] not in ALLOWED[app]
    }
    assert not upward


@pytest.mark.parametrize("app", sorted(ALLOWED))
def test_services_never_import_tasks(app):
    offenders = {
        f"{path.relative_to(ROOT)} imports {name}"
        for path in app_files(app)
        if path.name != "tasks.py" and "services" in path.stem or path.name == "engine.py"
        for name in imported_modules(path)
        if name.split(".")[-1] == "tasks" or ".tasks." in f"{name}."
    }
    assert not offenders


@pytest.mark.parametrize("package", PROJECT_PACKAGES)
def test_long_modules_say_why_they_are_long(package):
    """Fail for a module of the project's packages (not migrations, not tests) over
    MAX_MODULE_LINES lines whose module docstring has no line that begins "Long because" and
    goes on with the reason: e.g. "Long because an app's models live in one module, as in
    Django's own apps".

    The house rule (STYLE.md): modules with one job each, none over about 450 lines without a
    stated reason. The reason is written where a reader of the module sees it, and can be grepped
    for (`grep -rn "Long because"`). Split a module rather than write a reason it cannot honestly
    have.
    """
    unexplained = {}
    for path in app_files(package):
        if "tests" in path.relative_to(ROOT).parts:
            continue
        text = path.read_text()
        lines = len(text.splitlines())
        if lines <= MAX_MODULE_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if not LONG_BECAUSE.search(docstring):
            unexplained[str(path.relative_to(ROOT))] = lines
    assert not unexplained, (
        f"Over {MAX_MODULE_LINES} lines with no “Long because …” in the module docstring: "
        f"{unexplained}"
    )


POOLS_TABLES = {model._meta.db_table for model in apps.get_app_config("pools").get_models()}
SQL_WRITE = re.compile(r"\b(INSERT\s+INTO|UPDATE|DELETE\s+FROM|COPY|TRUNCATE)\b", re.IGNORECASE)


@pytest.mark.parametrize("app", ["imports", "notifications"])
def test_apps_above_pools_write_no_pools_table_with_their_own_sql(app):
    """Codes, issues and counters are written by pools' services only (the one issuing core,
    the loader of additions): an app above names no pools table, and no table through a
    model's `_meta.db_table`, in SQL of its own."""
    offenders = set()
    for path in app_files(app):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == "db_table":
                offenders.add(f"{path.relative_to(ROOT)}:{node.lineno} reads a model's db_table")
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                named = {table for table in POOLS_TABLES if table in node.value}
                if named and SQL_WRITE.search(node.value):
                    offenders.add(f"{path.relative_to(ROOT)}:{node.lineno} writes {named}")
    assert not offenders
