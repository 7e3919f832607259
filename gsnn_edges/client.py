"""Python client for the gsnn-edges REST API (``/v1``), on httpx.

The way other services are expected to call us::

    from gsnn_edges.client import Client

    with Client("http://127.0.0.1:8000", api_key="...") as c:
        graph = c.create_graph(nodes, edges, name="signalling")
        data = c.upload_dataset(graph["id"], "observations.csv")
        job = c.submit_job(graph["id"], data["id"], training={"epochs": 30})
        c.wait(job["id"], progress=True)
        top = c.edges(job["id"], max_q_value=0.05)

Every 4xx/5xx answer raises :class:`ApiError` (built from the problem+json body); a job
that ends ``failed`` or ``cancelled`` while :meth:`Client.wait` polls raises
:class:`JobFailed`. Library code: no server-side imports.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd

from gsnn_edges.edge_columns import CSV_QUOTED_START, EDGE_COLUMNS, FLOAT_EDGE_COLUMNS
from gsnn_edges.graph import Edge
from gsnn_edges.job_status import JobStatus

_PAGE_MAX = 1000  # the API's largest page
_PARQUET_SUFFIXES = (".parquet", ".pq")


def unquote_csv_names(frame: pd.DataFrame) -> pd.DataFrame:
    """Undo the quote the API's CSV export puts before node names a spreadsheet would run
    as formulas (one leading ``'`` before ``= + - @``, tab, CR or ``'``)."""
    out = frame.copy()
    for col in ("src", "dst"):
        out[col] = out[col].astype(str).str.replace(f"^'(?=[{CSV_QUOTED_START}])", "", regex=True)
    return out


class ApiError(Exception):
    """An error answer of the API (RFC 9457 problem+json).

    Attributes:
        status: HTTP status code.
        title: short phrase for the status (e.g. ``Not Found``).
        detail: what was wrong, in words a user can act on.
        errors: per-field problems ``[{"loc": [...], "msg": str}]`` (validation errors).
        type: problem type URI (e.g. ``/problems/not-found``).
        method, url: the request that failed.
    """

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        errors: list[dict[str, Any]] | None = None,
        *,
        type: str = "about:blank",
        method: str = "",
        url: str = "",
    ) -> None:
        self.status, self.title, self.detail = status, title, detail
        self.errors = list(errors or [])
        self.type, self.method, self.url = type, method, url
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f" ({self.method} {self.url})" if self.method else ""
        lines = [f"{self.status} {self.title}: {self.detail}{where}"]
        for err in self.errors:
            loc = ".".join(str(p) for p in err.get("loc", []))
            lines.append(f"  - {loc}: {err.get('msg', '')}" if loc else f"  - {err.get('msg')}")
        return "\n".join(lines)

    @classmethod
    def from_response(cls, resp: httpx.Response) -> ApiError:
        """Build from an error response; non-problem bodies keep their text as detail."""
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            body = {"detail": resp.text.strip() or resp.reason_phrase}
        detail = body.get("detail")
        return cls(
            resp.status_code,
            str(body.get("title") or resp.reason_phrase),
            detail if isinstance(detail, str) else str(detail),
            body.get("errors") if isinstance(body.get("errors"), list) else None,
            type=str(body.get("type", "about:blank")),
            method=resp.request.method,
            url=str(resp.request.url),
        )


class JobFailed(RuntimeError):
    """A job :meth:`Client.wait` waited for ended ``failed`` or ``cancelled``.

    Attributes:
        job: the final job resource.
        status: ``failed`` or ``cancelled``.
        error: the job's ``{type, message}`` (``None`` when cancelled without one).
    """

    def __init__(self, job: dict[str, Any]) -> None:
        self.job, self.status, self.error = job, job["status"], job.get("error")
        reason = f": {self.error['type']}: {self.error['message']}" if self.error else ""
        super().__init__(f"job {job['id']} ended {self.status}{reason}")


class Client:
    """Client of one gsnn-edges server.

    Args:
        base_url: server root, e.g. ``http://127.0.0.1:8000``.
        api_key: bearer key of your tenant (``None`` for a server without keys).
        timeout: seconds per HTTP request.
        http: an existing ``httpx.Client`` to send requests through instead of a new one
            (e.g. a test client); relative paths are resolved against its base URL and
            it is not closed by :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        *,
        http: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Accept": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._owns_http = http is None
        self._http = http or httpx.Client(base_url=self.base_url, timeout=timeout)

    # ------------------------------------------------------------------ plumbing
    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        auth = "with key" if "Authorization" in self._headers else "no key"
        return f"Client({self.base_url!r}, {auth})"

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self._headers, **kwargs.pop("headers", {})}
        resp = self._http.request(method, path, headers=headers, **kwargs)
        if resp.status_code >= 400:
            raise ApiError.from_response(resp)
        return resp

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._request(method, path, **kwargs).json()

    # ------------------------------------------------------------------ graphs, data
    def create_graph(
        self,
        nodes: Mapping[str, Sequence[str]],
        edges: Iterable[Edge],
        name: str | None = None,
    ) -> dict[str, Any]:
        """Store a graph; ``nodes`` has ``input``, ``function`` and ``output`` name lists."""
        body: dict[str, Any] = {
            "nodes": {k: list(v) for k, v in nodes.items()},
            "edges": [list(e) for e in edges],
        }
        if name is not None:
            body["name"] = name
        return self._json("POST", "/v1/graphs", json=body)

    def get_graph(self, graph_id: str, *, include_content: bool = False) -> dict[str, Any]:
        params = {"include": "content"} if include_content else None
        return self._json("GET", f"/v1/graphs/{graph_id}", params=params)

    def upload_dataset(
        self,
        graph_id: str,
        path_or_dataframe: str | os.PathLike | pd.DataFrame,
        format: str | None = None,
    ) -> dict[str, Any]:
        """Upload observations: a CSV/Parquet file path or a DataFrame.

        Args:
            graph_id: graph whose input and output nodes the columns name.
            path_or_dataframe: file path, or a DataFrame (one column per node).
            format: ``csv`` or ``parquet``; default from the file suffix, and Parquet
                for a DataFrame (exact floats, smaller).
        """
        if isinstance(path_or_dataframe, pd.DataFrame):
            fmt = (format or "parquet").lower()
            buf = io.BytesIO()
            if fmt == "csv":
                buf.write(path_or_dataframe.to_csv(index=False).encode())
            else:
                path_or_dataframe.to_parquet(buf, index=False)
            data, filename = buf.getvalue(), f"data.{fmt}"
        else:
            path = Path(path_or_dataframe)
            suffix = path.suffix.lower()
            fmt = (format or ("parquet" if suffix in _PARQUET_SUFFIXES else "csv")).lower()
            data, filename = path.read_bytes(), path.name
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"format must be 'csv' or 'parquet', got {format!r}")
        mime = "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"
        return self._json(
            "POST",
            "/v1/datasets",
            data={"graph_id": graph_id},
            files={"file": (filename, data, mime)},
        )

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/datasets/{dataset_id}")

    # ------------------------------------------------------------------ jobs
    def submit_job(
        self,
        graph_id: str,
        dataset_id: str,
        *,
        model: Mapping[str, Any] | None = None,
        regressor: Mapping[str, Any] | None = None,
        training: Mapping[str, Any] | None = None,
        validation: Mapping[str, Any] | None = None,
        confirm: Mapping[str, Any] | None = None,
        replicas: int | None = None,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Queue a training job; omitted blocks take the defaults of the job spec
        (:class:`gsnn_edges.spec.TrainSpec`). ``replicas`` > 1 trains that many runs on
        separate workers and serves their combined table."""
        body: dict[str, Any] = {"graph_id": graph_id, "dataset_id": dataset_id}
        blocks = {"model": model, "regressor": regressor, "training": training, "confirm": confirm}
        body.update({k: dict(v) for k, v in blocks.items() if v is not None})
        if replicas is not None:
            body["replicas"] = replicas
        if validation is not None:
            body["validation"] = _jsonable_validation(validation)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self._json("POST", "/v1/jobs", json=body, headers=headers)

    def job(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/jobs/{job_id}")

    def jobs(self, status: str | None = None, limit: int = 100, offset: int = 0) -> dict:
        """One page of your jobs: ``{total, limit, offset, items}``."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status is not None:
            params["status"] = status
        return self._json("GET", "/v1/jobs", params=params)

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self._json("POST", f"/v1/jobs/{job_id}/cancel")

    def wait(
        self,
        job_id: str,
        *,
        poll: float = 1.0,
        timeout: float | None = None,
        progress: bool = False,
    ) -> dict[str, Any]:
        """Poll until the job is terminal; returns the succeeded job.

        Args:
            poll: seconds between polls.
            timeout: give up after this many seconds (``None``: wait forever).
            progress: show a tqdm bar over epochs.

        Raises:
            JobFailed: the job ended ``failed`` or ``cancelled``.
            TimeoutError: ``timeout`` passed first.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = _EpochBar(job_id) if progress else None
        try:
            while True:
                job = self.job(job_id)
                if bar is not None:
                    bar.update(job)
                if JobStatus(job["status"]).is_terminal:
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    raise TimeoutError(
                        f"job {job_id} still {job['status']} after {timeout:g} s "
                        f"(progress {job.get('progress')})"
                    )
                time.sleep(poll if deadline is None else min(poll, deadline - time.monotonic()))
        finally:
            if bar is not None:
                bar.close()
        if job["status"] != JobStatus.succeeded:
            raise JobFailed(job)
        return job

    # ------------------------------------------------------------------ results
    def edges(
        self,
        job_id: str,
        *,
        src: str | None = None,
        dst: str | None = None,
        min_score: float | None = None,
        max_q_value: float | None = None,
        max_confirm_q_value: float | None = None,
        candidates_only: bool = True,
        limit: int | None = None,
        format: str = "json",
        page_size: int = _PAGE_MAX,
    ) -> pd.DataFrame:
        """Scored function -> function pairs, score descending, as a DataFrame.

        Args:
            src, dst, min_score, max_q_value, max_confirm_q_value, candidates_only: the
                API's filters.
            limit: at most this many rows (``None``: all of them).
            format: ``json`` pages through ``limit``/``offset``; ``csv`` fetches all
                rows in one streamed response.
            page_size: rows per JSON page (1..1000).

        Returns:
            DataFrame with the columns of :data:`EDGE_COLUMNS`.
        """
        filters: dict[str, Any] = {"candidates_only": candidates_only}
        optional = {
            "src": src,
            "dst": dst,
            "min_score": min_score,
            "max_q_value": max_q_value,
            "max_confirm_q_value": max_confirm_q_value,
        }
        filters.update((k, v) for k, v in optional.items() if v is not None)
        path = f"/v1/jobs/{job_id}/edges"
        if format == "csv":
            text = self._request("GET", path, params={**filters, "format": "csv"}).text
            frame = unquote_csv_names(pd.read_csv(io.StringIO(text)))
            return frame if limit is None else frame.head(limit).reset_index(drop=True)
        if format != "json":
            raise ValueError(f"format must be 'json' or 'csv', got {format!r}")
        if not 1 <= page_size <= _PAGE_MAX:
            raise ValueError(f"page_size must be in 1..{_PAGE_MAX}, got {page_size}")
        rows: list[dict[str, Any]] = []
        while limit is None or len(rows) < limit:
            size = page_size if limit is None else min(page_size, limit - len(rows))
            params = {**filters, "limit": size, "offset": len(rows)}
            page = self._json("GET", path, params=params)
            rows += page["items"]
            if not page["items"] or len(rows) >= page["total"]:
                break
        frame = pd.DataFrame(rows, columns=list(EDGE_COLUMNS))
        # JSON nulls (unscored, unconfirmed) become NaN, as the CSV path reads them
        return frame.astype(dict.fromkeys(FLOAT_EDGE_COLUMNS, float))

    def weights(self, job_id: str) -> tuple[list[str], np.ndarray]:
        """``(nodes, W)`` with ``W[i, j]`` for ``nodes[i] -> nodes[j]``.

        ``W`` comes as raw ``.npy``; its rows follow the function nodes of the job's graph.

        Shapes:
            W: [N, N] float32, N function nodes.
        """
        raw = self._request("GET", f"/v1/jobs/{job_id}/weights", params={"format": "npy"})
        W = np.load(io.BytesIO(raw.content), allow_pickle=False)
        graph = self.get_graph(self.job(job_id)["graph_id"], include_content=True)
        return list(graph["content"]["nodes"]["function"]), W

    def metrics(self, job_id: str) -> dict[str, Any]:
        return self._json("GET", f"/v1/jobs/{job_id}/metrics")

    def evaluate(
        self,
        job_id: str,
        positive_edges: Iterable[Edge],
        top_k: Sequence[int] = (1, 3, 5),
    ) -> dict[str, Any]:
        """Score your own held-out true edges: ``auc``, ``mrr``, ``top@k``, ..."""
        body = {"positive_edges": [list(e) for e in positive_edges], "top_k": list(top_k)}
        return self._json("POST", f"/v1/jobs/{job_id}/evaluate", json=body)


def _jsonable_validation(validation: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(validation)
    if out.get("edges") is not None:
        out["edges"] = [list(e) for e in out["edges"]]
    return out


class _EpochBar:
    """tqdm bar over a job's epochs, advanced from polled progress."""

    def __init__(self, job_id: str) -> None:
        self._job_id, self._bar = job_id, None

    def update(self, job: dict[str, Any]) -> None:
        prog = job.get("progress") or {}
        training = (job.get("spec") or {}).get("training") or {}
        if self._bar is None:
            from tqdm.auto import tqdm

            total = prog.get("epochs") or training.get("epochs")
            self._bar = tqdm(total=total, desc=f"job {self._job_id}", unit="epoch")
        done = prog.get("epoch") or 0
        if done > self._bar.n:
            self._bar.update(done - self._bar.n)
        post = {"status": job["status"]}
        if prog.get("stage") not in (None, "training"):
            post["stage"] = prog["stage"]
        if job.get("replicas"):  # the bar follows the slowest replica
            done_replicas = sum(r["status"] == JobStatus.succeeded for r in job["replicas"])
            post["replicas"] = f"{done_replicas}/{len(job['replicas'])}"
        if prog.get("train_loss") is not None:
            post["loss"] = f"{prog['train_loss']:.3f}"
        if prog.get("val_auc") is not None:
            post["val_auc"] = f"{prog['val_auc']:.3f}"
        self._bar.set_postfix(post)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
