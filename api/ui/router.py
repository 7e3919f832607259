"""Routes of the dashboard: its pages, their scripts and style sheet, and what the pages
need to know of the server (whether it wants an API key, the sizes it draws). Pages hold
no data (the scripts fetch /v1 with the key the user signed in with), so they are
public; a strict Content-Security-Policy allows scripts and styles from this origin
only, never inline."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from string import Template

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

from api.deps import Ctx
from gsnn_edges.service.plot_data import MAX_HEATMAP_NODES
from gsnn_edges.service.plot_graph import MAX_DRAWN_NODES

STATIC = Path(__file__).parent / "static"
# the files /ui/static/ serves and their types; nothing else under STATIC is reachable
ASSETS = {
    "api.js": "text/javascript",
    "dashboard.js": "text/javascript",
    "results.js": "text/javascript",
    "network.js": "text/javascript",
    "graph.js": "text/javascript",
    "newjob.js": "text/javascript",
    "style.css": "text/css",
    "favicon.svg": "image/svg+xml",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

# page -> its title; each page's file holds its <main>, layout.html the rest (head, bar)
PAGES = {"jobs": "Jobs", "job": "Job", "graph": "Graph", "new": "New job", "signin": "Sign in"}
NAV = """\
    <nav><a href="/ui">Jobs</a> <a href="/ui/new">New job</a> <a href="/docs">API docs</a></nav>
    <span id="session-state" class="muted"></span>
    <button id="sign-out" type="button" hidden>Sign out</button>
"""

router = APIRouter(prefix="/ui", include_in_schema=False)


@cache
def _html(name: str) -> str:
    """A page: its <main> in the shared layout (no navigation on the sign-in page).
    Static text, built once per process."""
    layout = Template((STATIC / "layout.html").read_text())
    main = (STATIC / f"{name}.html").read_text()
    nav = "" if name == "signin" else NAV
    return layout.substitute(title=PAGES[name], page=name, nav=nav, main=main)


def _page(name: str) -> HTMLResponse:
    return HTMLResponse(_html(name), headers=HEADERS)


@router.get("")
def jobs_page() -> HTMLResponse:
    return _page("jobs")


@router.get("/signin")
def signin_page() -> HTMLResponse:
    return _page("signin")


@router.get("/jobs/{job_id}")
def job_page(job_id: str) -> HTMLResponse:
    """The job page; its script reads the id from the path and fetches the job."""
    return _page("job")


@router.get("/graphs/{graph_id}")
def graph_page(graph_id: str) -> HTMLResponse:
    """A graph: counts, degrees, a drawing when small, its datasets."""
    return _page("graph")


@router.get("/new")
def new_job_page() -> HTMLResponse:
    """Upload or pick a graph and a dataset, fill in the spec, submit."""
    return _page("new")


@router.get("/config")
async def config(ctx: Ctx) -> dict[str, bool | int]:
    """``auth``: whether the API wants a key (false: embedded mode, no sign-in);
    ``heatmap_max_nodes`` / ``drawing_max_nodes``: the largest job (function nodes) whose
    W ``weights.svg`` draws and the largest graph (nodes) ``graph.svg`` draws, so that
    pages ask only for what exists."""
    return {
        "auth": ctx.settings.auth_enabled,
        "heatmap_max_nodes": MAX_HEATMAP_NODES,
        "drawing_max_nodes": MAX_DRAWN_NODES,
    }


@router.get("/static/{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, "no such dashboard file")
    return FileResponse(STATIC / name, media_type=ASSETS[name], headers=HEADERS)
