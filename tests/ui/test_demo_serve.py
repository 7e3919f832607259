"""`gsnn-edges demo --serve`: the demo's job trained by a served API and worker, its
dashboard URL printed before and after training, the page and the job reachable there."""

from __future__ import annotations

import subprocess

import httpx
import pytest

from proctools import free_port, gsnn_edges_argv, service_env, stop_process_group

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_demo_serve_prints_the_dashboard_url_of_a_served_job(tmp_path):
    port = free_port()
    argv = gsnn_edges_argv(
        "demo", "--serve", "--port", str(port), "--out", str(tmp_path), "--width", "3",
        "--samples", "200", "--epochs", "2", "--confirm", "0", "--serve-seconds", "60",
    )  # fmt: skip
    proc = subprocess.Popen(
        argv,
        env=service_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        urls = []
        for line in proc.stdout:
            if line.startswith("dashboard: "):
                urls.append(line.split()[1])
            if len(urls) == 2:
                break
        assert len(urls) == 2 and urls[0] == urls[1], urls
        url = urls[0]
        assert url.startswith(f"http://127.0.0.1:{port}/ui/jobs/job_")
        page = httpx.get(url, timeout=10)
        job = httpx.get(url.replace("/ui/jobs/", "/v1/jobs/"), timeout=10).json()
        roc = httpx.get(url.replace("/ui/jobs/", "/v1/jobs/") + "/plots/roc.svg", timeout=10)
    finally:
        stop_process_group(proc)
    assert page.status_code == 200 and 'data-page="job"' in page.text
    assert job["status"] == "succeeded" and job["spec"]["validation"]["edges"]
    assert roc.status_code == 200 and roc.headers["content-type"] == "image/svg+xml"
    assert (tmp_path / "serve.log").stat().st_size > 0
