"""Fuzzing (issue 9): schemathesis generates requests for every operation of
``/openapi.json``, authenticated, and checks every response: no 5xx, a documented status
code, the declared content type, headers and body schema; schema-invalid requests are
refused, schema-valid ones only for what JSON Schema cannot state. Deterministic
(derandomized, fixed seed) and bounded (``MAX_EXAMPLES`` per operation and phase).

Seeded objects (a graph, a dataset, a succeeded and a queued job) let generated cases use
real ids and values, so the fuzz reaches past the 404s into the results; the documented
successes (CSV and npy included) are also requested explicitly.

The schema is loaded at import from an app over a temporary directory, and the module
fixture seeds that same app: schemathesis's fixture-based loader
(``schemathesis.pytest.from_fixture``) fails under pytest 9.2 (it reads ``Function._nodeid``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")  # the dev extra

from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from gsnn_edges.service.runner import run_job  # noqa: E402

from apihelpers import KEYS, bearer, job_body, upload  # noqa: E402
from proctools import make_app  # noqa: E402

MAX_EXAMPLES = 25
SEED = 9
SMALL = {"model": {"channels": 2, "layers": 2}, "training": {"epochs": 1}}

_DATA = tempfile.TemporaryDirectory(prefix="gsnn-fuzz-")  # removed at exit
_QUEUE: list[str] = []
APP = make_app(
    Path(_DATA.name), _QUEUE.append, api_keys=",".join(f"{t}:{k}" for t, k in KEYS.items())
)
# Values of the seeded objects by parameter or body field name (the `seeded` fixture)
REAL: dict[str, list] = {}

CONFIG = {  # what a schemathesis.toml would say
    "seed": SEED,
    "auth": {"openapi": {"HTTPBearer": {"bearer": KEYS["a"]}}},
    "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
    # how fast Hypothesis builds job specs on a busy CI core says nothing about the API
    "suppress-health-check": ["too_slow"],
    # 422 is how this API refuses well-formed requests that break rules JSON Schema cannot
    # state (ids of no such graph, edges naming unknown nodes, a CSV whose header misses
    # a node) and 429 its active-job quota; any other 4xx for a schema-valid request fails
    "checks": {
        "positive_data_acceptance": {"expected-statuses": ["2xx", "404", "409", "422", "429"]}
    },
}
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", APP, config=schemathesis.Config.from_dict(CONFIG)
)


def _with_real(values: object) -> st.SearchStrategy:
    """``values`` as generated, or with some fields replaced by seeded values."""
    if not isinstance(values, dict):
        return st.just(values)
    return st.fixed_dictionaries(
        {k: st.sampled_from([v, *REAL[k]]) if k in REAL else st.just(v) for k, v in values.items()}
    )


@schema.hook
def flatmap_case(context, case):
    """Positive cases may use seeded ids and values (negative ones stay as generated, so
    a replaced field cannot turn them valid)."""
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return st.just(case)

    def apply(parts: tuple) -> object:
        case.path_parameters, case.query, case.body = parts
        return case

    parts = (_with_real(case.path_parameters), _with_real(case.query), _with_real(case.body))
    return st.tuples(*parts).map(apply)


@pytest.fixture(scope="module", autouse=True)
def seeded(bench, frame) -> dict[str, str]:
    """A graph, a dataset, a succeeded job, two queued jobs; fills ``REAL``."""
    client, auth = TestClient(APP), bearer("a")
    graph = client.post("/v1/graphs", json=bench.partial.to_json(), headers=auth).json()["id"]
    csv = frame.head(20).to_csv(index=False)  # short: a failure's curl line shows it
    dataset = upload(client, graph, csv.encode(), headers=auth).json()["id"]
    body = {**job_body(graph, dataset), **SMALL}

    def submit() -> str:
        return client.post("/v1/jobs", json=body, headers=auth).json()["id"]

    done = submit()
    assert run_job(APP.state.ctx, _QUEUE.pop()) == "succeeded"
    queued, spare = submit(), submit()  # spare: cancelled by the explicit requests
    edges = [list(e) for e in bench.held_out]
    REAL.update(
        graph_id=[graph],
        dataset_id=[dataset],
        job_id=[done, queued],
        file=[csv],
        positive_edges=[edges],
        src=[edges[0][0]],
        dst=[edges[0][1]],
    )
    yield {"graph": graph, "dataset": dataset, "done": done, "queued": queued, "spare": spare}
    REAL.clear()


def _documented_successes(ids: dict[str, str], bench) -> list[tuple[str, int, dict]]:
    """(operation, expected status, Case arguments): each documented success once, the
    CSV and npy forms included, and a 409 from the queued job."""
    graph, dataset = {"graph_id": ids["graph"]}, {"dataset_id": ids["dataset"]}
    done, queued = {"job_id": ids["done"]}, {"job_id": ids["queued"]}
    submit = {
        "body": {**job_body(**graph, **dataset), **SMALL},
        "headers": {"Idempotency-Key": "k"},
    }
    upload_form = {**graph, "file": REAL["file"][0]}
    return [
        ("POST /v1/graphs", 201, {"body": bench.partial.to_json()}),
        ("GET /v1/graphs", 200, {"query": {"limit": 1}}),
        (
            "GET /v1/graphs/{graph_id}",
            200,
            {"path_parameters": graph, "query": {"include": "content"}},
        ),
        ("POST /v1/datasets", 201, {"body": upload_form}),
        ("GET /v1/datasets", 200, {"query": graph}),
        ("GET /v1/datasets/{dataset_id}", 200, {"path_parameters": dataset}),
        ("POST /v1/jobs", 202, submit),
        ("POST /v1/jobs", 200, submit),  # the idempotent replay
        ("GET /v1/jobs", 200, {"query": {"status": "succeeded"}}),
        ("GET /v1/jobs/{job_id}", 200, {"path_parameters": done}),
        ("GET /v1/jobs/{job_id}/edges", 200, {"path_parameters": done}),
        ("GET /v1/jobs/{job_id}/edges", 200, {"path_parameters": done, "query": {"format": "csv"}}),
        ("GET /v1/jobs/{job_id}/weights", 200, {"path_parameters": done}),
        (
            "GET /v1/jobs/{job_id}/weights",
            200,
            {"path_parameters": done, "query": {"format": "npy"}},
        ),
        ("GET /v1/jobs/{job_id}/metrics", 200, {"path_parameters": done}),
        ("GET /v1/jobs/{job_id}/metrics", 409, {"path_parameters": queued}),
        (
            "POST /v1/jobs/{job_id}/evaluate",
            200,
            {"path_parameters": done, "body": {"positive_edges": REAL["positive_edges"][0]}},
        ),
        ("POST /v1/jobs/{job_id}/cancel", 202, {"path_parameters": {"job_id": ids["spare"]}}),
        ("POST /v1/jobs/{job_id}/cancel", 409, {"path_parameters": done}),
        ("GET /healthz", 200, {}),
        ("GET /readyz", 200, {}),
        ("GET /metrics", 200, {}),
    ]


def test_fuzz_documented_successes_conform(seeded, bench):
    """Generated cases rarely build a valid graph, upload or job; these explicit ones put
    every success response (and its other media types) through the same checks."""
    for label, status, kwargs in _documented_successes(seeded, bench):
        method, path = label.split(" ")
        response = schema[path][method].Case(**kwargs).call_and_validate(headers=bearer("a"))
        assert response.status_code == status, (label, response.text)


@schema.parametrize()
def test_fuzz_every_operation_conforms(case):
    case.call_and_validate()
