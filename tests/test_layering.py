"""Architecture contracts, checked on the source and on a running API process:

- the library (``gsnn_edges`` outside ``service`` and ``cli``) never imports the service
  stack, ``api`` or ``worker``;
- ``api`` never imports ``worker``: the CLI's server module assembles the two;
- graph utilities are imported from the graph module, where they live;
- the API process never imports torch, not even while it validates a graph, a dataset
  and a job (forked workers then inherit no torch or CUDA state, and the API stays
  small).
"""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICE_STACK = ("fastapi", "celery", "kombu", "sqlalchemy", "alembic", "gsnn_edges.service")
# ``gsnn_edges.cli`` is exempt: it is the set of entry points that assemble the library,
# the service, the API and the worker into processes, so it must import all of them.
LIBRARY_EXEMPT = ("service", "cli")
GRAPH_UTILITIES = {"pair_indices", "split_edges", "topological_levels", "EDGE_TYPES", "Edge"}


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, imported names)`` of every absolute import in ``path``."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, [a.name for a in node.names]))
    return out


def _within(module: str, packages) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def _offenders(folder: Path, forbidden, skip=()) -> dict[str, list[str]]:
    found = {}
    for path in folder.rglob("*.py"):
        rel = path.relative_to(folder)
        if rel.parts[0] in skip:
            continue
        bad = sorted({m for m, _ in _imports(path) if _within(m, forbidden)})
        if bad:
            found[str(rel)] = bad
    return found


def test_library_modules_do_not_import_the_service_stack_api_or_worker():
    forbidden = (*SERVICE_STACK, "api", "worker")
    assert not _offenders(ROOT / "gsnn_edges", forbidden, skip=LIBRARY_EXEMPT)


def test_api_never_imports_the_worker():
    assert not _offenders(ROOT / "api", ("worker",))


def test_graph_utilities_are_imported_from_the_graph_module():
    wrong = {}
    for folder in ("gsnn_edges", "api", "worker", "benchmarks", "tests"):
        for path in (ROOT / folder).rglob("*.py"):
            for module, names in _imports(path):
                moved = GRAPH_UTILITIES.intersection(names)
                if module.startswith("gsnn_edges") and module != "gsnn_edges.graph" and moved:
                    wrong[str(path.relative_to(ROOT))] = sorted(moved)
    assert not wrong, wrong


def test_the_checks_see_a_violation(tmp_path):
    """The source checks above would catch an offending import."""
    (tmp_path / "bad.py").write_text("from worker.config import RUN_JOB\nimport sqlalchemy\n")
    assert _offenders(tmp_path, ("worker", "sqlalchemy")) == {
        "bad.py": ["sqlalchemy", "worker.config"]
    }


# An API process doing a submit's whole validation: graph upload, dataset upload (the
# table checks), job submit (spec, graph and memory checks), job listing.
API_FLOW = """
import sys, tempfile
from pathlib import Path
from fastapi.testclient import TestClient
from api.app import create_app
from gsnn_edges.service.settings import Settings
from gsnn_edges.simulate import converging_tier_graph, simulate_frame

bench = converging_tier_graph(4)
frame = simulate_frame(bench.full, 60, seed=0)
queued = []
settings = Settings(data_dir=Path(tempfile.mkdtemp()) / "data", api_keys="")
app = create_app(settings, enqueue=queued.append, broker_ping=lambda: None, run_reaper=False)
local = {"base_url": "http://127.0.0.1", "client": ("127.0.0.1", 50000)}
with TestClient(app, **local) as c:
    gid = c.post("/v1/graphs", json=bench.partial.to_json()).json()["id"]
    files = {"file": ("d.csv", frame.to_csv(index=False).encode(), "text/csv")}
    did = c.post("/v1/datasets", data={"graph_id": gid}, files=files).json()["id"]
    body = {"graph_id": gid, "dataset_id": did, "validation": {"holdout_fraction": 0.3}}
    job = c.post("/v1/jobs", json=body)
    assert job.status_code == 202, job.text
    assert c.get("/v1/jobs").json()["items"][0]["status"] == "queued"
import worker.app
print(len(queued), "torch" in sys.modules)
"""


def test_the_api_process_never_imports_torch(tmp_path):
    code = textwrap.dedent(API_FLOW)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "False"], out.stdout
