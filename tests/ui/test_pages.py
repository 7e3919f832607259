"""The dashboard's pages as HTTP resources: public shells under a strict CSP, scripts as
files (no inline script anywhere), the config that says whether to sign in."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi.testclient import TestClient

from proctools import make_app

PAGES = ("/ui", "/ui/signin", "/ui/jobs/job_anything")


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
    with world.server.client() as c:
        source = c.get("/ui/static/api.js").text + c.get("/ui/static/dashboard.js").text
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", source)


def test_pages_config_says_whether_to_sign_in(world, tmp_path):
    with world.server.client() as c:
        assert c.get("/ui/config").json() == {"auth": True}
    app = make_app(tmp_path / "data", lambda job_id: None)
    with TestClient(app, base_url="http://127.0.0.1", client=("127.0.0.1", 5000)) as c:
        assert c.get("/ui/config").json() == {"auth": False}


def test_pages_are_not_in_the_api_document(world):
    with world.server.client() as c:
        paths = c.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/ui")]
