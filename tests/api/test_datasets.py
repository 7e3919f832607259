"""POST /v1/datasets: bad tables are 422 problem+json, oversized uploads 413."""

from __future__ import annotations

import numpy as np
import pytest

from apihelpers import assert_problem, make_client, upload


def _bad(frame, case):
    out = frame.astype(object) if case == "nonnumeric" else frame.copy()
    if case == "missing":
        return out.drop(columns=["o1"]), "missing columns.*'o1'"
    if case == "extra":
        return out.assign(bogus=0.0), "'bogus'"
    if case == "nonnumeric":
        out.iat[0, 0] = "x1"
        return out, "non-numeric.*row 1 column 'in0'"
    if case == "nan":
        out.iat[1, 3] = np.nan
        return out, "NaN or infinite.*'in3'"
    if case == "inf":
        out.iat[1, 3] = -np.inf
        return out, "NaN or infinite.*'in3'"
    return out.iloc[:0], "zero data rows"


@pytest.mark.parametrize("case", ["missing", "extra", "nonnumeric", "nan", "inf", "zero_rows"])
def test_datasets_bad_upload_is_422_and_not_stored(client, graph_id, frame, case) -> None:
    bad, pattern = _bad(frame, case)
    resp = upload(client, graph_id, bad.to_csv(index=False).encode())
    assert_problem(resp, 422, pattern)
    assert client.get("/v1/datasets").json()["total"] == 0


def test_datasets_upload_created_with_location(client, graph_id, frame) -> None:
    resp = upload(client, graph_id, frame.to_csv(index=False).encode())
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["n_samples"] == 300 and body["graph_id"] == graph_id
    assert resp.headers["location"] == f"/v1/datasets/{body['id']}"
    assert client.get(body and resp.headers["location"]).json()["id"] == body["id"]


def test_datasets_malformed_multipart_is_a_documented_400(client) -> None:
    """Found by fuzzing: a body that is not multipart/form-data was a 400 the OpenAPI
    document did not list."""
    headers = {"content-type": "multipart/form-data; boundary=b"}
    resp = client.post("/v1/datasets", content=b"--b\r\nnot a part\r\n--b--\r\n", headers=headers)
    assert_problem(resp, 400, "multipart")
    documented = client.get("/openapi.json").json()["paths"]["/v1/datasets"]["post"]
    assert "application/problem+json" in documented["responses"]["400"]["content"]


def test_datasets_unknown_graph_is_422(client, frame) -> None:
    resp = upload(client, "gr_nope", frame.to_csv(index=False).encode())
    body = assert_problem(resp, 422, "graph 'gr_nope' not found")
    assert body["errors"] == [{"loc": ["body", "graph_id"], "msg": body["detail"]}]


def test_datasets_oversized_upload_is_413(tmp_path, queue, bench, frame) -> None:
    with make_client(tmp_path, queue, max_upload_mb=0.01) as client:
        gid = client.post("/v1/graphs", json=bench.partial.to_json()).json()["id"]
        big = frame.to_csv(index=False).encode()
        assert len(big) > 0.01 * 2**20
        declared = [assert_problem(upload(client, gid, big), 413, "exceeds the limit")]
        json_ct = {"content-type": "application/json"}
        resp = client.post("/v1/graphs", content=big, headers=json_ct)
        declared.append(assert_problem(resp, 413, "exceeds the limit"))
        # chunked body without Content-Length is cut off while streaming
        chunks = (big[i : i + 4096] for i in range(0, len(big), 4096))
        resp = client.post("/v1/graphs", content=chunks, headers=json_ct)
        assert "content-length" not in resp.request.headers
        streamed = assert_problem(resp, 413, "exceeds the limit")
        # both paths render the same problem
        for body in declared:
            assert body["type"] == streamed["type"] == "/problems/payload-too-large"
            assert body["title"] == streamed["title"]
        assert client.get("/v1/datasets").json()["total"] == 0
