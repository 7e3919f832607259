"""Architecture contracts: the library never imports the service stack, and importing the
API or worker adapters does not import torch (forked workers inherit no torch state)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = (
    "fastapi",
    "celery",
    "kombu",
    "sqlalchemy",
    "alembic",
    "api",
    "worker",
    "gsnn_edges.service",
)


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_library_modules_do_not_import_the_service_stack():
    lib = ROOT / "gsnn_edges"
    offenders = {}
    for path in lib.rglob("*.py"):
        rel = path.relative_to(lib)
        if rel.parts[0] in ("service", "cli"):
            continue  # the service layer and the CLI entry point sit above the library
        bad = {m for m in _imports(path) if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)}
        if bad:
            offenders[str(rel)] = sorted(bad)
    assert not offenders, offenders


def test_importing_api_and_worker_does_not_import_torch():
    code = "import sys, api.app, worker.app, gsnn_edges; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
