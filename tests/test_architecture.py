"""The package's layers: what each folder may import, and no state shared between models."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "python" / "customer_segmentation"

# Third-party modules each layer may import at the top of its modules (pyspark only inside
# the Spark backend's functions, and under TYPE_CHECKING).
ALLOWED = {
    "ml": {"numpy", "scipy", "sklearn", "kneed", "threadpoolctl"},
    "models": {"numpy", "pyarrow"},
    "spark": {"numpy", "pyarrow", "jinja2", "yaml"},
    "report": {"altair", "duckdb", "pandas", "numpy"},
    "ingest": {"duckdb", "pyarrow", "openpyxl", "dbt"},
}
# The package's own folders each layer may import: each depends only on the ones below it.
OWN = {
    "ml": {"ml", "config", "errors", "timing"},
    "models": {"ml", "models", "config", "errors", "timing"},
    "spark": {"ml", "models", "spark", "config", "errors", "timing", "ingest"},
    "report": {"report", "errors"},
    "ingest": {"ingest", "errors", "lock"},
}


def top_level_imports(path: Path) -> set[str]:
    """Modules imported at module level (not inside functions or TYPE_CHECKING blocks)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_what_it_may(layer: str) -> None:
    for path in sorted((PACKAGE / layer).glob("*.py")):
        for name in top_level_imports(path):
            parts = name.split(".")
            if parts[0] == "__future__" or parts[0] in sys.stdlib_module_names:
                continue
            if parts[0] == "customer_segmentation":
                assert len(parts) > 1 and parts[1] in OWN[layer], f"{path.name} imports {name}"
            else:
                assert parts[0] in ALLOWED[layer], f"{path.name} imports {name}"


def test_the_dbt_models_do_not_import_spark() -> None:
    code = (
        "import sys, customer_segmentation.models; "
        "print(sorted(m for m in sys.modules if 'spark' in m))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(PACKAGE.parent)},
    )
    assert run.stdout.strip() == "[]"


def test_no_module_keeps_state_between_models() -> None:
    """No module-level dict, list or set a model could fill and another read (a hidden cache)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            targets = node.targets if isinstance(node, ast.Assign) else []
            if isinstance(node, ast.AnnAssign):
                targets, value = [node.target], node.value
            else:
                value = getattr(node, "value", None)
            mutable = isinstance(value, ast.Dict | ast.List | ast.Set) or (
                isinstance(value, ast.Call)
                and isinstance(value.func, ast.Name | ast.Attribute)
                and getattr(value.func, "id", getattr(value.func, "attr", ""))
                in {"dict", "list", "set", "Lock", "defaultdict", "OrderedDict"}
            )
            names = [t.id for t in targets if isinstance(t, ast.Name)]
            if mutable and names and not all(n.isupper() or n.startswith("__") for n in names):
                pytest.fail(f"{path.relative_to(PACKAGE)}: module-level mutable {names}")
            if mutable and isinstance(value, ast.Call):
                pytest.fail(f"{path.relative_to(PACKAGE)}: module-level {names} = {value.func}")
