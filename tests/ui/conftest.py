"""Dashboard fixtures: the API served for real by uvicorn (in a thread of this process),
tenants with real jobs, and Debian's chromium driven by Playwright.

Tenant ``a`` has a graph whose function nodes carry HTML and script in their names (every
page and SVG must show them as text) and a job trained in process; ``b`` has a job of its
own that ``a`` must never see; ``c`` and ``d`` start empty (the jobs page's speed test, the
new-job form).

Every tab fails its test on a script error, a ``console.error`` (which includes CSP
violations and responses the browser reports as failed), a request that fails and any
HTTP error status, except the statuses a test declares with :meth:`Tab.expect`.
Screenshots (:meth:`Tab.screenshot`) go to ``out/ui-screenshots/`` (git-ignored).
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from gsnn_edges.service.runner import run_job

from proctools import free_port, make_app

KEYS = {"a": "key-a", "b": "key-b", "c": "key-c", "d": "key-d"}
# the small job of the brief: trains in a few seconds on CPU
SPEC = {"model": {"channels": 2, "layers": 2}, "training": {"epochs": 2}}
HOSTILE = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "out" / "ui-screenshots"


def hostile_name(name: str) -> str:
    """A node name that runs script wherever a page or an SVG parses names as markup."""
    return f"{name}{HOSTILE}"


class LiveServer:
    """``app`` served by uvicorn on a free loopback port, in a daemon thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.app = app
        self.url = f"http://127.0.0.1:{free_port()}"
        port = int(self.url.rsplit(":", 1)[1])
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def client(self, tenant: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {KEYS[tenant]}"} if tenant else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


@dataclass
class World:
    """The served app and what each tenant owns in it."""

    server: LiveServer
    queue: list[str]
    graph: dict  # a plain benchmark graph (JSON) and a dataset of it (CSV bytes)
    csv: bytes
    keys: dict[str, str] = field(default_factory=lambda: dict(KEYS))
    hostile: str = HOSTILE  # what every function node name of tenant a ends with
    jobs: dict[str, list[str]] = field(default_factory=dict)  # tenant -> job ids
    succeeded: str = ""  # tenant a's trained job
    confirmed: int = 5  # how many top candidates that job's confirmation tests
    queued: str = ""  # tenant a's job that never runs (for cancel)
    nodes: list[str] = field(default_factory=list)  # tenant a's function node names
    graph_id: str = ""  # tenant a's graph (hostile names) that the succeeded job trained on
    validation: list[list[str]] = field(default_factory=list)  # that job's validation edges
    held_out: list[list[str]] = field(default_factory=list)  # edges absent from :attr:`graph`

    def submit(self, tenant: str, graph_id: str, dataset_id: str, **blocks: dict) -> str:
        body = {"graph_id": graph_id, "dataset_id": dataset_id, **SPEC, **blocks}
        with self.server.client(tenant) as c:
            resp = c.post("/v1/jobs", json=body)
        assert resp.status_code == 202, resp.text
        self.jobs.setdefault(tenant, []).append(resp.json()["id"])
        return resp.json()["id"]

    def upload(self, tenant: str, graph: dict | None = None) -> tuple[str, str]:
        """``(graph id, dataset id)`` of ``graph`` (default: :attr:`graph`) and :attr:`csv`."""
        with self.server.client(tenant) as c:
            gid = c.post("/v1/graphs", json=graph or self.graph).json()["id"]
            files = {"file": ("d.csv", self.csv)}
            resp = c.post("/v1/datasets", data={"graph_id": gid}, files=files)
        assert resp.status_code == 201, resp.text
        return gid, resp.json()["id"]


def hostile_graph(bench) -> dict:
    """``bench.partial`` with every function node renamed by :func:`hostile_name`."""
    graph = bench.partial.to_json()
    rename = {n: hostile_name(n) for n in graph["nodes"]["function"]}
    graph["nodes"]["function"] = [rename[n] for n in graph["nodes"]["function"]]
    graph["edges"] = [[rename.get(s, s), rename.get(d, d)] for s, d in graph["edges"]]
    return graph


@pytest.fixture(scope="session")
def world(tmp_path_factory, benchmarks) -> Iterator[World]:
    bench, frame = benchmarks.graph(4), benchmarks.frame(4, 200)
    queue: list[str] = []
    keys = ",".join(f"{t}:{k}" for t, k in KEYS.items())
    app = make_app(
        tmp_path_factory.mktemp("ui") / "data", queue.append, api_keys=keys, max_active_jobs=500
    )
    with LiveServer(app) as server:
        w = World(server, queue, bench.partial.to_json(), frame.to_csv(index=False).encode())
        w.held_out = [list(e) for e in bench.held_out]
        graph = hostile_graph(bench)
        w.nodes = graph["nodes"]["function"]
        w.validation = [[hostile_name(s), hostile_name(d)] for s, d in bench.held_out]
        gid, did = w.upload("a", graph)
        w.graph_id = gid
        validation = {"edges": w.validation}
        w.succeeded = w.submit("a", gid, did, confirm={"top": w.confirmed}, validation=validation)
        assert run_job(app.state.ctx, w.succeeded) == "succeeded"
        w.queued = w.submit("a", gid, did)
        w.submit("b", *w.upload("b"))
        yield w


@pytest.fixture
def local_server(tmp_path) -> Iterator[LiveServer]:
    """A server without API keys (embedded mode: one local tenant, no sign-in)."""
    with LiveServer(make_app(tmp_path / "data", lambda job_id: None)) as server:
        yield server


@pytest.fixture(scope="session")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM} (Debian: apt-get install -y chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@dataclass
class Tab:
    """A fresh browser tab (its own sessionStorage) and the problems it reported."""

    page: object
    problems: list[str]
    expected: set[int] = field(default_factory=set)

    def screenshot(self, name: str) -> Path:
        """The whole page as ``out/ui-screenshots/<name>.png`` (git-ignored)."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def expect(self, *statuses: int) -> None:
        """HTTP error statuses this test provokes on purpose (a refused key, another
        tenant's object): not problems."""
        self.expected.update(statuses)

    def on_console(self, message) -> None:
        if message.type != "error":
            return
        text = message.text
        refused = "the server responded with a status of "
        if refused in text and int(text.split(refused)[1][:3]) in self.expected:
            return
        self.problems.append(f"console.error: {text}")

    def on_response(self, response) -> None:
        if response.status >= 400 and response.status not in self.expected:
            self.problems.append(
                f"HTTP {response.status}: {response.request.method} {response.url}"
            )

    def on_request_failed(self, request) -> None:
        failure = request.failure or ""
        if "ERR_ABORTED" not in failure:  # a poll cut short by navigating away is no fault
            self.problems.append(f"request failed ({failure}): {request.method} {request.url}")


@pytest.fixture
def tab(browser) -> Iterator[Tab]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)  # generous: a loaded CI machine is slow, not wrong
    tab = Tab(page, [])
    page.on("pageerror", lambda exc: tab.problems.append(f"page error: {exc}"))
    page.on("console", tab.on_console)
    page.on("response", tab.on_response)
    page.on("requestfailed", tab.on_request_failed)
    page.on("dialog", lambda d: d.accept())
    yield tab
    context.close()
    assert not tab.problems, tab.problems
