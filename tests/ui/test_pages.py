"""The dashboard's pages as HTTP resources: public shells under a strict CSP, scripts as
files (no inline script anywhere), the config that says whether to sign in."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from api.ui.router import ASSETS, STATIC
from gsnn_edges.service.plot_data import MAX_HEATMAP_NODES
from gsnn_edges.service.plot_graph import MAX_DRAWN_NODES

from proctools import make_app

PAGES = ("/ui", "/ui/signin", "/ui/jobs/job_anything", "/ui/graphs/gr_anything", "/ui/new")


class SubmitButtons(HTMLParser):
    """Whether each submit button of a page is disabled as served."""

    def __init__(self) -> None:
        super().__init__()
        self.disabled: list[bool] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "button" and attrs.get("type") == "submit":
            self.disabled.append("disabled" in attrs)


class Scripts(HTMLParser):
    """The <script> tags of a page and any inline event handler attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict] = []
        self.handlers: list[str] = []
        self.inline = ""
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.handlers += [name for name, _ in attrs if name.startswith("on")]
        if tag == "script":
            self.scripts.append(dict(attrs))
            self._in_script = True

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        if self._in_script:
            self.inline += data.strip()


@pytest.mark.parametrize("path", PAGES)
def test_pages_are_public_shells_under_a_strict_csp(world, path):
    with world.server.client() as c:
        resp = c.get(path)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    csp = resp.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    parsed = Scripts()
    parsed.feed(resp.text)
    assert parsed.scripts and all(
        s.get("src", "").startswith("/ui/static/") for s in parsed.scripts
    )
    assert not parsed.inline and not parsed.handlers


def test_pages_forms_ship_disabled_until_their_script_handles_them(world):
    """A form submitted before its handler is attached is the browser's own GET: the
    fields, an API key among them, land in the URL. api.js's onSubmit enables them."""
    buttons = SubmitButtons()
    for path in PAGES:
        with world.server.client() as c:
            buttons.feed(c.get(path).text)
    assert len(buttons.disabled) >= 4 and all(buttons.disabled)  # sign in, filters, ROC, new
    with world.server.client() as c:
        assert "<noscript>" in c.get("/ui/signin").text  # and says why they stay disabled


def test_pages_static_files_are_served_with_their_types(world):
    with world.server.client() as c:
        js = c.get("/ui/static/dashboard.js")
        css = c.get("/ui/static/style.css")
        missing = c.get("/ui/static/router.py")
        traversal = c.get("/ui/static/..%2Frouter.py")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert missing.status_code == traversal.status_code == 404


def test_pages_scripts_never_parse_data_as_html(world):
    """Data reaches the DOM through textContent only (the XSS rule of the dashboard)."""
    scripts = [name for name, kind in ASSETS.items() if kind == "text/javascript"]
    with world.server.client() as c:
        source = "".join(c.get(f"/ui/static/{name}").text for name in scripts)
    assert len(scripts) >= 6 and "export async function networkView" in source
    forbidden = r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(|DOMParser"
    assert not re.search(forbidden, source)


def test_pages_scripts_import_only_served_files(world):
    """Every module a page script imports is one /ui/static/ serves (no CDN, no library)."""
    for name, kind in ASSETS.items():
        if kind != "text/javascript":
            continue
        source = (STATIC / name).read_text()
        for imported in re.findall(r'from "([^"]+)"', source):
            assert imported.startswith("./") and imported[2:] in ASSETS, (name, imported)


def test_pages_config_says_whether_to_sign_in(world, tmp_path):
    limits = {"heatmap_max_nodes": MAX_HEATMAP_NODES, "drawing_max_nodes": MAX_DRAWN_NODES}
    with world.server.client() as c:
        assert c.get("/ui/config").json() == {"auth": True, **limits}
    app = make_app(tmp_path / "data", lambda job_id: None)
    with TestClient(app, base_url="http://127.0.0.1", client=("127.0.0.1", 5000)) as c:
        assert c.get("/ui/config").json() == {"auth": False, **limits}


def test_pages_are_not_in_the_api_document(world):
    with world.server.client() as c:
        paths = c.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/ui")]
