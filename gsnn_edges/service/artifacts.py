"""Artifact store: files under the data dir, each written atomically (tmp + os.replace)."""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from gsnn_edges.service.edge_store import ROW_GROUP_ROWS, write_edge_tables
from gsnn_edges.service.jsonsafe import to_jsonable

JOB_FILES = {
    "weights": "W.npy",
    "nodes": "nodes.json",
    "edges": "edges.parquet",
    # the same rows sorted by source / destination name (edge_store.SORT_ORDERS); jobs
    # stored before they existed have edges.parquet only
    "edges_by_src": "edges.by_src.parquet",
    "edges_by_dst": "edges.by_dst.parquet",
    "metrics": "metrics.json",
    "model": "model.pt",
    "regressor": "regressor.pt",
    # a replica job's scores and p-values of the job's scorer, [N, N] float64, which the
    # job combines (service.children)
    "replica_scores": "scores.npy",
    "replica_p_values": "p_values.npy",
    # a job whose confirmation fans out: its candidates [M, 2] and the refined model they
    # are fitted on (staged attempt); each chunk's held-out losses [V, n] and fitted
    # weights [V, M, P] (service.children)
    "confirm_pairs": "confirm_pairs.npy",
    "confirm_model": "confirm_model.pt",
    "confirm_losses": "confirm_losses.npy",
    "confirm_thetas": "confirm_thetas.npy",
}


class ArtifactStore:
    """Graph JSON, dataset Parquet and job results below ``root``.

    Layout: ``graphs/<id>.json``, ``datasets/<id>.parquet``,
    ``jobs/<id>/<attempt>/<file>`` (``jobs/<id>/<file>`` for jobs stored before attempts
    had folders).
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()

    # --- low level ------------------------------------------------------------------

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @contextmanager
    def open_for_write(self, rel: str) -> Iterator[BinaryIO]:
        """A file to write ``rel`` into, published atomically when the block ends without
        an error (tmp + fsync + os.replace): readers see the old file or the new one."""
        target = self.path(rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def write_bytes(self, rel: str, data: bytes) -> Path:
        """Write ``data`` to ``rel`` atomically (:meth:`open_for_write`)."""
        with self.open_for_write(rel) as fh:
            fh.write(data)
        return self.path(rel)

    def read_bytes(self, rel: str) -> bytes:
        return self.path(rel).read_bytes()

    def delete(self, rel: str) -> None:
        target = self.path(rel)
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            target.unlink(missing_ok=True)

    @contextmanager
    def removed_on_error(self, rel: str) -> Iterator[None]:
        """Delete ``rel`` if the block raises: an artifact whose database row was never
        committed must not be left behind."""
        try:
            yield
        except BaseException:
            self.delete(rel)
            raise

    def check_writable(self) -> None:
        """Raise if the store cannot write and remove a probe file."""
        self.write_bytes(".probe", b"ok")
        self.delete(".probe")

    # --- typed helpers --------------------------------------------------------------

    def write_json(self, rel: str, obj: Any) -> Path:
        text = json.dumps(to_jsonable(obj), separators=(",", ":"), allow_nan=False)
        return self.write_bytes(rel, text.encode())

    def read_json(self, rel: str) -> Any:
        return json.loads(self.read_bytes(rel))

    def write_parquet(self, rel: str, frame: pd.DataFrame) -> Path:
        buf = io.BytesIO()
        frame.to_parquet(buf, index=False)
        return self.write_bytes(rel, buf.getvalue())

    def read_parquet(self, rel: str, columns: list[str] | None = None) -> pd.DataFrame:
        return pd.read_parquet(self.path(rel), columns=columns)

    def write_edges(
        self,
        job_id: str,
        frame: pd.DataFrame,
        attempt: str | None = None,
        row_group_rows: int = ROW_GROUP_ROWS,
    ) -> None:
        """A job's edge table (``inference.edge_table``, score descending) in each stored
        sort order, laid out for paging (:mod:`~gsnn_edges.service.edge_store`)."""
        opener = lambda what: self.open_for_write(self.job_key(job_id, what, attempt))
        write_edge_tables(frame, opener, row_group_rows)

    def write_npy(self, rel: str, array: np.ndarray) -> Path:
        buf = io.BytesIO()
        np.save(buf, array, allow_pickle=False)
        return self.write_bytes(rel, buf.getvalue())

    def read_npy(self, rel: str) -> np.ndarray:
        return np.load(self.path(rel), allow_pickle=False)

    # --- names ----------------------------------------------------------------------

    @staticmethod
    def graph_key(graph_id: str) -> str:
        return f"graphs/{graph_id}.json"

    @staticmethod
    def dataset_key(dataset_id: str) -> str:
        return f"datasets/{dataset_id}.parquet"

    @staticmethod
    def attempt_folder(job_id: str, attempt: str | None = None) -> str:
        """The folder of one attempt's files (the job's own for jobs stored before
        attempts had folders)."""
        return f"jobs/{job_id}/{attempt}" if attempt else f"jobs/{job_id}"

    @classmethod
    def job_key(cls, job_id: str, what: str, attempt: str | None = None) -> str:
        """One result file of one attempt (its claim token): attempts never share files,
        so a worker that lost its claim cannot overwrite the published attempt's."""
        return f"{cls.attempt_folder(job_id, attempt)}/{JOB_FILES[what]}"
