"""The dashboard's result views, graph page and new-job form in a real browser: the W
heatmap (or the top pairs beyond its size), ROC / precision-recall, the network view and
its node detail, the graph page, a job submitted through the form and followed to
``succeeded``, and a second tenant that sees none of it. Screenshots of each page go to
``out/ui-screenshots/``."""

from __future__ import annotations

import json

import pytest
from test_dashboard import assert_clean, sign_in

from gsnn_edges.service.runner import run_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def loaded(page, selector: str) -> None:
    """Wait until the <img> at ``selector`` shows an image (an SVG fetched with the key)."""
    page.wait_for_function(
        "s => { const i = document.querySelector(s); return i && !i.hidden && i.naturalWidth > 0 }",
        arg=selector,
    )


def cells(page, table: str) -> list[list[str]]:
    """The text of each body cell of ``table``, row by row."""
    script = "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    return page.locator(f"{table} tbody tr").evaluate_all(script)


def edges(world, tenant: str, job: str, **params) -> dict:
    with world.server.client(tenant) as c:
        resp = c.get(f"/v1/jobs/{job}/edges", params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def check_node_detail(world, tenant: str, job: str, page, name: str) -> None:
    """The node panel lists the node's best incoming and outgoing candidates (5 each)."""
    page.locator("#node-detail #node-name").wait_for()
    assert page.locator("#node-name").text_content() == name
    outgoing = edges(world, tenant, job, src=name, limit=5)["items"]
    incoming = edges(world, tenant, job, dst=name, limit=5)["items"]
    shown_out = page.locator("#node-out li .node").all_text_contents()
    shown_in = page.locator("#node-in li .node").all_text_contents()
    assert shown_out == [e["dst"] for e in outgoing]
    assert shown_in == [e["src"] for e in incoming]


def test_dashboard_pages_job_shows_heatmap_roc_and_a_clickable_network(world, tab):
    sign_in(tab, world, path=f"/ui/jobs/{world.succeeded}")
    page = tab.page
    loaded(page, "#weights-plot")
    loaded(page, "#roc-plot")
    assert "topological order" in page.locator("#weights-note").text_content()
    assert f"{len(world.validation)} validation edges" in page.locator("#roc-note").text_content()
    with world.server.client("a") as c:
        hood = c.get(f"/v1/jobs/{world.succeeded}/plots/network.json").json()
    nodes = page.locator("svg.network .net-node")
    nodes.first.wait_for()
    assert nodes.count() == len(hood["nodes"])
    assert page.locator("svg.network .candidate-edge").count() == len(hood["candidates"])
    assert page.locator("svg.network .graph-edge").count() >= len(hood["graph_edges"])
    # names (full of markup) are text: the tooltips hold them whole
    titles = page.locator("svg.network .net-node title").all_text_contents()
    assert titles == [n["name"] for n in hood["nodes"]]
    # the user's own held-out edges: their curves replace the validation ones
    before = page.locator("#roc-plot").get_attribute("src")
    page.fill("#roc-form textarea", "\n".join(f"{s} -> {d}" for s, d in world.validation[:2]))
    page.click("#roc-form button")
    page.wait_for_function("src => document.querySelector('#roc-plot').src !== src", arg=before)
    assert page.locator("#roc-note").text_content().startswith("Your 2 held-out edges")
    best = hood["candidates"][0]
    name = hood["nodes"][best["src"]]["name"]
    page.locator(f'svg.network .net-node[data-node="{best["src"]}"]').click()
    check_node_detail(world, "a", world.succeeded, page, name)
    assert page.locator("svg.network .net-node.selected").count() == 1
    other = hood["nodes"][best["dst"]]["name"]  # by keyboard: Tab to a node, Enter
    page.locator(f'svg.network .net-node[data-node="{best["dst"]}"]').focus()
    page.keyboard.press("Enter")
    page.locator("#node-name", has_text=other).wait_for()
    check_node_detail(world, "a", world.succeeded, page, other)
    tab.screenshot("job")
    page.locator("#results").scroll_into_view_if_needed()
    assert_clean(tab)


def test_dashboard_pages_job_lists_top_pairs_when_w_is_too_large(world, tab, monkeypatch):
    """Over the heatmap's limit the page never asks for weights.svg (which would be 422)."""
    import api.ui.router

    monkeypatch.setattr(api.ui.router, "MAX_HEATMAP_NODES", 3)
    asked: list[str] = []
    tab.page.on("request", lambda r: asked.append(r.url) if "weights.svg" in r.url else None)
    sign_in(tab, world, path=f"/ui/jobs/{world.succeeded}")
    page = tab.page
    page.locator("#weights-top li").first.wait_for()
    top = edges(world, "a", world.succeeded, limit=20)["items"]
    shown = page.locator("#weights-top li").all_text_contents()
    assert len(shown) == len(top) and shown[0].startswith(f"{top[0]['src']} → {top[0]['dst']}")
    assert "over the heatmap's 3" in page.locator("#weights-note").text_content()
    assert page.locator("#weights-plot").is_hidden() and not asked
    assert_clean(tab)


def test_dashboard_pages_graph_page_from_the_job_page(world, tab):
    sign_in(tab, world, path=f"/ui/jobs/{world.succeeded}")
    page = tab.page
    page.click(f'#job-facts a[href="/ui/graphs/{world.graph_id}"]')
    page.wait_for_url(f"**/ui/graphs/{world.graph_id}")
    page.locator("#node-counts tbody tr").first.wait_for()
    with world.server.client("a") as c:
        graph = c.get(f"/v1/graphs/{world.graph_id}").json()
        datasets = c.get("/v1/datasets", params={"graph_id": world.graph_id}).json()
    rows = cells(page, "#node-counts")
    assert [r[:2] for r in rows] == [
        [t, str(graph["counts"][t])] for t in ("input", "function", "output")
    ]
    assert page.locator("#edge-counts tbody tr").count() == 3
    assert page.locator("#degrees tbody tr").count() == 3
    assert page.locator("#hubs tbody tr").count() == 5
    loaded(page, "#graph-plot")
    ids = page.locator("#datasets tbody tr td:first-child").all_text_contents()
    assert ids == [d["id"] for d in datasets["items"]] and ids
    tab.screenshot("graph")
    assert_clean(tab)


def test_dashboard_pages_another_tenant_sees_no_graph(world, tab):
    tab.expect(404)
    sign_in(tab, world, tenant="b", path=f"/ui/graphs/{world.graph_id}")
    message = tab.page.locator("#graph-message")
    message.wait_for(state="visible")
    assert message.text_content() == f"No graph {world.graph_id} for this API key."
    assert tab.page.locator("#graph-body").is_hidden()


def field(name: str) -> str:
    """The selector of the spec form's input for ``block.field``."""
    return "#f-" + name.replace(".", "\\.")


def test_dashboard_pages_new_job_form_trains_a_job_another_tenant_never_sees(world, tab):
    """Tenant d uploads a graph and a dataset through the form, fills in the spec (the
    browser enforces the schema's bounds, the server its other rules), lands on the job
    page, watches it succeed, opens the network view; tenant b then sees none of it."""
    sign_in(tab, world, tenant="d", path="/ui/new")
    page = tab.page
    page.locator(field("model.channels")).wait_for()
    # generated from JobCreate's schema: defaults shown, bounds as input attributes
    assert page.input_value(field("model.channels")) == "8"
    assert page.get_attribute(field("model.channels"), "min") == "1"
    assert page.get_attribute(field("training.epochs"), "max") == "100000"
    assert page.input_value(field("regressor.score_mode")) == "abs"
    assert page.is_checked(field("model.add_function_self_edges"))
    assert page.locator(f"{field('regressor.aggregators')} input:checked").count() == 2
    tab.screenshot("new")

    graph = json.dumps(world.graph).encode()
    page.set_input_files(
        "#graph-file", [{"name": "g.json", "mimeType": "application/json", "buffer": graph}]
    )
    page.fill("#graph-name", "form graph")
    page.set_input_files(
        "#dataset-file", [{"name": "d.csv", "mimeType": "text/csv", "buffer": world.csv}]
    )
    posts: list[str] = []
    page.on(
        "request", lambda r: posts.append(r.url.split("/v1/")[1]) if r.method == "POST" else None
    )
    for name, value in (("model.channels", "2"), ("model.layers", "2"), ("training.epochs", "0")):
        page.fill(field(name), value)
    page.click("#new-job-submit")  # epochs below the minimum: the browser refuses
    epochs = page.locator(field("training.epochs"))
    assert epochs.evaluate("e => e.validity.rangeUnderflow")
    assert posts == []

    page.fill(field("training.epochs"), "2")
    page.fill(field("validation.edges"), "\n".join(f"{s} -> {d}" for s, d in world.held_out))
    page.fill(field("validation.holdout_fraction"), "0.1")  # with edges: the server says no
    tab.expect(422)
    page.click("#new-job-submit")
    block_error = page.locator('[data-block="validation"] > .field-error')
    block_error.wait_for()
    assert "either 'edges' or 'holdout_fraction'" in block_error.text_content()
    assert "HTTP 422" in page.locator("#new-job-message").text_content()
    page.fill(field("validation.holdout_fraction"), "")
    page.click("#new-job-submit")
    page.wait_for_url("**/ui/jobs/job_*")
    assert posts == ["graphs", "datasets", "jobs", "jobs"]  # the uploads are not repeated
    job_id = page.url.rsplit("/", 1)[1]
    world.jobs.setdefault("d", []).append(job_id)
    with world.server.client("d") as c:
        spec = c.get(f"/v1/jobs/{job_id}").json()["spec"]
    assert (spec["model"]["channels"], spec["model"]["layers"], spec["training"]["epochs"]) == (
        2,
        2,
        2,
    )
    assert spec["validation"]["edges"] == world.held_out

    page.locator("#job-status.status-queued").wait_for()
    assert run_job(world.server.app.state.ctx, job_id) == "succeeded"
    page.locator("#job-status.status-succeeded").wait_for(timeout=30_000)
    loaded(page, "#weights-plot")
    loaded(page, "#roc-plot")
    node = page.locator("svg.network .net-node.top").first
    node.click()
    check_node_detail(world, "d", job_id, page, node.locator("title").text_content())
    tab.screenshot("job-from-form")

    # tenant b: not in its jobs, and the job and graph pages are not found
    graph_link = page.locator("#job-facts a[href^='/ui/graphs/']")
    graph_link.filter(has_text="form graph").wait_for()  # its name, linked by id
    graph_id = graph_link.get_attribute("title")
    page.click("#sign-out")
    page.wait_for_url("**/ui/signin")
    tab.expect(404)
    sign_in(tab, world, tenant="b", path="/ui")
    page.locator("#jobs tbody tr").first.wait_for()
    ids = page.locator("#jobs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.job)")
    assert job_id not in ids and set(ids) == set(world.jobs["b"])
    page.goto(f"{world.server.url}/ui/jobs/{job_id}")
    page.locator("#job-message").wait_for(state="visible")
    assert page.locator("#job-message").text_content() == f"No job {job_id} for this API key."
    page.goto(f"{world.server.url}/ui/graphs/{graph_id}")
    page.locator("#graph-message").wait_for(state="visible")
    assert page.locator("#graph-body").is_hidden()
    assert_clean(tab)


def test_dashboard_pages_new_job_form_picks_an_earlier_graph_and_dataset(world, tab):
    gid, did = world.upload("d", {**world.graph, "name": "picked <b>graph</b>"})
    sign_in(tab, world, tenant="d", path=f"/ui/new?graph_id={gid}")
    page = tab.page
    page.locator(f'#dataset-select option[value="{did}"]').wait_for(state="attached")
    assert page.is_checked('input[name="graph-source"][value="existing"]')
    assert page.input_value("#graph-select") == gid
    page.check('input[name="dataset-source"][value="existing"]')
    page.fill(field("training.epochs"), "1")
    page.click("#new-job-submit")
    page.wait_for_url("**/ui/jobs/job_*")
    job_id = page.url.rsplit("/", 1)[1]
    world.jobs.setdefault("d", []).append(job_id)
    with world.server.client("d") as c:
        job = c.get(f"/v1/jobs/{job_id}").json()
    assert (job["graph_id"], job["dataset_id"], job["spec"]["training"]["epochs"]) == (gid, did, 1)
    # the jobs list names the graph (as text) and links to its page
    page.goto(f"{world.server.url}/ui")
    link = page.locator(f'tr[data-job="{job_id}"] a[href="/ui/graphs/{gid}"]')
    link.filter(has_text="picked <b>graph</b>").wait_for()
    assert link.get_attribute("title") == gid
    assert_clean(tab)
