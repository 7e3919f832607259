"""`gsnn-edges submit/status/edges` against the real app served by uvicorn in a thread."""

from __future__ import annotations

import json
import threading
import time

import pandas as pd
import pytest
import uvicorn

from gsnn_edges.cli import main
from gsnn_edges.client import Client
from gsnn_edges.service.runner import run_job
from gsnn_edges.spec import MIN_EFFECT, REFINE_EPOCHS

from proctools import free_port, make_app

KEY = "key-cli"


@pytest.fixture(scope="module")
def url(tmp_path_factory):
    """The app on a free port; jobs run in a background thread with the worker's runner."""
    holder: dict = {}
    jobs: list[threading.Thread] = []

    def enqueue(job_id: str) -> None:
        jobs.append(threading.Thread(target=run_job, args=(holder["app"].state.ctx, job_id)))
        jobs[-1].start()

    data_dir = tmp_path_factory.mktemp("cli") / "data"
    holder["app"] = make_app(data_dir, enqueue, api_keys=f"cli:{KEY}")
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(holder["app"], host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    for job in jobs:
        job.join(timeout=60)
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def files(tmp_path_factory, bench, frame):
    tmp = tmp_path_factory.mktemp("cli-files")
    (tmp / "graph.json").write_text(json.dumps(bench.partial.to_json()))
    frame.to_parquet(tmp / "data.parquet", index=False)
    spec = {"model": {"channels": 3, "layers": 3}, "training": {"epochs": 2}, "confirm": {"top": 3}}
    (tmp / "spec.json").write_text(json.dumps(spec))
    return tmp


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _ids(out: str) -> dict[str, str]:
    """``{"graph": id, "dataset": id, "job": id}`` from the lines submit prints."""
    ids: dict[str, str] = {}
    for line in out.splitlines():
        word = line.split()[:2]
        if len(word) == 2 and word[0] in ("graph", "dataset", "job"):
            ids.setdefault(word[0], word[1])
    return ids


def test_client_verbs_submit_wait_status_and_edges(url, files, frame, capsys, tmp_path):
    common = ("--url", url, "--api-key", KEY)
    code, out, _ = _run(
        capsys,
        "submit",
        *common,
        "--graph",
        str(files / "graph.json"),
        "--data",
        str(files / "data.parquet"),
        "--spec",
        str(files / "spec.json"),
        "--wait",
        "--poll",
        "0.1",
    )
    assert code == 0, out
    ids = _ids(out)
    assert ids["graph"].startswith("gr_") and ids["dataset"].startswith("ds_")
    assert "status   succeeded" in out and f"({len(frame)} samples)" in out
    job = ids["job"]
    assert f"watch:   {url}/ui/jobs/{job}  (the dashboard)" in out

    code, out, _ = _run(capsys, "status", job, *common)
    assert code == 0 and "status   succeeded" in out and "epoch 2/2" in out
    with Client(url, api_key=KEY) as c:  # every block of --spec reached the job
        assert c.job(job)["spec"]["confirm"] == {
            "top": 3,
            "refine_epochs": REFINE_EPOCHS,
            "min_effect": MIN_EFFECT,
        }

    code, out, _ = _run(capsys, "edges", job, *common, "--limit", "3")
    assert code == 0 and len(out.strip().splitlines()) == 4  # header + 3 rows

    code, out, _ = _run(capsys, "edges", job, *common, "--csv", str(tmp_path / "e.csv"))
    written = pd.read_csv(tmp_path / "e.csv")
    assert code == 0 and f"wrote {len(written)} rows" in out and not written["has_edge"].any()
    code, _, _ = _run(
        capsys, "edges", job, *common, "--all-pairs", "--csv", str(tmp_path / "a.csv")
    )
    assert len(pd.read_csv(tmp_path / "a.csv")) > len(written)

    code, out, _ = _run(
        capsys, "submit", *common, "--graph-id", ids["graph"], "--dataset-id", ids["dataset"]
    )
    assert code == 0 and "job " in out and "graph " not in out and "gsnn-edges status" in out


def test_client_verbs_status_of_a_job_with_replicas(url, files, capsys, tmp_path):
    common = ("--url", url, "--api-key", KEY)
    spec = json.loads((files / "spec.json").read_text())
    (tmp_path / "spec.json").write_text(json.dumps({**spec, "replicas": 2}))
    inputs = ("--graph", str(files / "graph.json"), "--data", str(files / "data.parquet"))
    argv = ("submit", *common, *inputs, "--spec", str(tmp_path / "spec.json"), "--wait")
    code, out, _ = _run(capsys, *argv, "--poll", "0.1")
    assert code == 0 and "status   succeeded" in out, out
    code, out, _ = _run(capsys, "status", _ids(out)["job"], *common)
    assert "stage confirming" in out  # the combined table's top 3 were confirmed last
    assert "replica  0: succeeded, epoch 2/2" in out and "replica  1: succeeded" in out


def test_client_verbs_api_key_defaults_to_env(url, monkeypatch, capsys):
    monkeypatch.setenv("GSNN_EDGES_API_KEY", "wrong")
    code, _, err = _run(capsys, "status", "job_x", "--url", url)
    assert code == 1 and "401 Unauthorized: unknown API key" in err
    monkeypatch.setenv("GSNN_EDGES_API_KEY", KEY)
    code, _, err = _run(capsys, "status", "job_x", "--url", url)
    assert code == 1 and "error: 404 Not Found: job 'job_x' not found" in err


def test_client_verbs_bad_inputs_exit_1_with_a_message(url, files, capsys, tmp_path):
    common = ("--url", url, "--api-key", KEY)
    (tmp_path / "bad.json").write_text("[1, 2]")
    code, _, err = _run(
        capsys, "submit", *common, "--graph", str(tmp_path / "bad.json"), "--dataset-id", "d"
    )
    assert code == 1 and "must hold a JSON object, got list" in err
    code, _, err = _run(
        capsys, "submit", *common, "--graph-id", "g", "--dataset-id", "d", "--spec",
        str(files / "graph.json"),
    )  # fmt: skip
    assert code == 1 and "nodes: Extra inputs are not permitted" in err
    (tmp_path / "spec.json").write_text('{"confirm": {"top": 9999}}')
    code, _, err = _run(
        capsys, "submit", *common, "--graph-id", "g", "--dataset-id", "d", "--spec",
        str(tmp_path / "spec.json"),
    )  # fmt: skip
    assert code == 1 and "confirm.top: Input should be less than or equal to 500" in err
    code, _, err = _run(capsys, "status", "j", "--url", "http://127.0.0.1:1")
    assert code == 1 and "cannot reach http://127.0.0.1:1" in err
