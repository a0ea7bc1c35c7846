"""The house rules of the layout: app dependencies run one way, services never import tasks."""

import ast
from pathlib import Path

import pytest

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
