"""`pip install secretswitch` pulls only what the client and the rotation function import."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_PACKAGES = ("client", "rotation_lambda")  # folders in the checkout, installed as secretswitch.*
# Optional: imported only when asked for (a MeterProvider passed to a client), installed by an extra.
OPTIONAL_IMPORTS = {"opentelemetry": "otel"}
# Each adapter imports its library, which its own extra installs (never a runtime dependency).
ADAPTERS = {"beanie": "beanie", "mongoengine": "mongoengine", "django": "django"}  # module -> extra
ADAPTERS_DIR = ROOT / "client" / "adapters"


def _requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    assert match, requirement
    return re.sub(r"[-_.]+", "-", match.group(0)).lower()


def _imports_of(paths: list[Path]) -> set[str]:
    """Top-level modules imported anywhere in ``paths`` (type-checking imports included) outside the stdlib."""
    found: set[str] = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return {name for name in found if name not in sys.stdlib_module_names and name != "secretswitch"}


def _third_party_imports(package: str) -> set[str]:
    """What ``package`` imports, its adapters (imported only when used, each with its own extra) aside."""
    return _imports_of([path for path in (ROOT / package).rglob("*.py") if ADAPTERS_DIR not in path.parents])


def _distribution_of(module: str) -> str:
    distributions = importlib.metadata.packages_distributions().get(module)
    assert distributions, f"no installed distribution provides {module!r}"
    return _requirement_name(distributions[0])


def _project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        project = tomllib.load(file)["project"]
    assert isinstance(project, dict)
    return project


def test_runtime_dependencies_are_exactly_what_the_client_and_the_function_import() -> None:
    project = _project()
    declared = {_requirement_name(r) for r in project["dependencies"]}  # type: ignore[attr-defined]
    imported = {
        _distribution_of(module)
        for package in RUNTIME_PACKAGES
        for module in _third_party_imports(package)
        # Type stubs only: imported under TYPE_CHECKING, never at run time (they live in the dev extra).
        if not module.startswith("mypy_boto3_") and module not in OPTIONAL_IMPORTS
    }
    assert declared == imported, (
        f"declared but not imported: {sorted(declared - imported)}; imported but not declared: "
        f"{sorted(imported - declared)}"
    )


def test_the_comparison_packages_live_in_the_bench_extra() -> None:
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    bench = {_requirement_name(r) for r in extras["bench"]}
    assert bench == {"aws-secretsmanager-caching", "cachetools", "aws-lambda-powertools"}


def test_opentelemetry_is_the_otel_extra_and_only_client_telemetry_imports_it_at_run_time() -> None:
    """``secretswitch[otel]`` is the API alone; the SDK is for tests (dev) and the demo's exporter."""
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    assert {_requirement_name(r) for r in extras["otel"]} == {"opentelemetry-api"}
    assert "opentelemetry-sdk" in {_requirement_name(r) for r in extras["dev"]}
    importers = set()
    for path in (ROOT / "client").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        guarded = {
            id(inner)
            for node in ast.walk(tree)
            if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING"
            for inner in ast.walk(node)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in guarded:
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                if any(name.split(".")[0] == "opentelemetry" for name in names):
                    importers.add(path.name)
    assert importers == {"telemetry.py"}


def test_each_adapter_imports_only_what_its_extra_installs() -> None:
    extras = _project()["optional-dependencies"]
    assert isinstance(extras, dict)
    runtime = {_requirement_name(r) for r in _project()["dependencies"]}  # type: ignore[attr-defined]
    assert {path.stem for path in ADAPTERS_DIR.iterdir() if path.name != "__init__.py" and "__" not in path.name} == (
        set(ADAPTERS)
    )
    for module, extra in ADAPTERS.items():
        paths = [ADAPTERS_DIR / f"{module}.py"] if (ADAPTERS_DIR / f"{module}.py").exists() else []
        paths += list((ADAPTERS_DIR / module).rglob("*.py"))
        imported = {_distribution_of(name) for name in _imports_of(paths)} - runtime
        # django-mongodb-backend brings Django itself.
        installed = {_requirement_name(r) for r in extras[extra]} | ({"django"} if extra == "django" else set())
        assert imported <= installed, (module, sorted(imported - installed))
        dev = {_requirement_name(r) for r in extras["dev"]}
        assert {_requirement_name(r) for r in extras[extra]} <= dev, f"the tests need the {extra} extra's packages"


def test_importing_the_client_imports_no_adapter_library() -> None:
    import subprocess

    code = (
        "import sys, secretswitch.client, secretswitch.client.adapters; "
        "print(sorted(m for m in ('beanie', 'mongoengine', 'django') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == "[]"
