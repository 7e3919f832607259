"""Client verbs: ``submit``, ``status`` and ``edges`` against a running server.

They call :class:`gsnn_edges.client.Client`; httpx and pandas are imported inside the
verb functions so that ``gsnn-edges --help`` stays fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8000"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``submit``, ``status`` and ``edges`` to the ``gsnn-edges`` parser."""
    submit = subparsers.add_parser(
        "submit", help="Upload a graph and data (or reuse ids) and submit a training job."
    )
    _add_server_options(submit)
    graph = submit.add_mutually_exclusive_group(required=True)
    graph.add_argument("--graph", type=Path, help='graph.json: {"nodes": ..., "edges": ...}')
    graph.add_argument("--graph-id", help="Id of a graph stored earlier.")
    data = submit.add_mutually_exclusive_group(required=True)
    data.add_argument("--data", type=Path, help="Observations, .csv or .parquet.")
    data.add_argument("--dataset-id", help="Id of a dataset uploaded earlier.")
    submit.add_argument(
        "--spec",
        type=Path,
        help="spec.json with optional model/regressor/training/validation/confirm blocks.",
    )
    submit.add_argument("--name", help="Name of the uploaded graph.")
    submit.add_argument("--idempotency-key", help="Resubmitting with it returns the same job.")
    submit.add_argument("--wait", action="store_true", help="Block with a progress bar.")
    submit.add_argument("--poll", type=float, default=1.0, help="Seconds between polls.")
    submit.set_defaults(func=_guarded(_submit))

    status = subparsers.add_parser("status", help="Show a job's status and progress.")
    _add_server_options(status)
    status.add_argument("job_id", metavar="JOB_ID")
    status.set_defaults(func=_guarded(_status))

    edges = subparsers.add_parser("edges", help="Show or save a succeeded job's scored edges.")
    _add_server_options(edges)
    edges.add_argument("job_id", metavar="JOB_ID")
    edges.add_argument(
        "--limit", type=int, help="At most N rows (default: 20 shown, all written to --csv)."
    )
    edges.add_argument("--csv", type=Path, help="Write the rows to this CSV file.")
    edges.add_argument("--min-score", type=float, help="Only pairs with score >= this.")
    edges.add_argument("--max-q-value", type=float, help="Only pairs with q_value <= this.")
    edges.add_argument(
        "--max-confirm-q-value",
        type=float,
        help="Only confirmed pairs with confirm_q_value <= this (jobs with confirm.top > 0).",
    )
    edges.add_argument(
        "--all-pairs", action="store_true", help="Keep pairs that are already graph edges."
    )
    edges.set_defaults(func=_guarded(_edges))


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", default=DEFAULT_URL, help=f"Server URL (default {DEFAULT_URL}).")
    parser.add_argument(
        "--api-key",
        default=os.environ.get("GSNN_EDGES_API_KEY"),
        help="Bearer key of your tenant (default: $GSNN_EDGES_API_KEY).",
    )


def _guarded(verb: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run ``verb``; API, connection and input errors become one message and exit 1."""

    def run(args: argparse.Namespace) -> int:
        import httpx

        from gsnn_edges.client import ApiError, JobFailed

        try:
            return verb(args)
        except (ApiError, JobFailed) as exc:
            print(f"error: {exc}", file=sys.stderr)
        except httpx.TransportError as exc:
            print(f"error: cannot reach {args.url}: {exc}", file=sys.stderr)
        except (OSError, ValueError) as exc:
            print(f"error: {exc}", file=sys.stderr)
        return 1

    run.__name__ = verb.__name__
    return run


def _client(args: argparse.Namespace):  # -> Client, imported lazily
    from gsnn_edges.client import Client

    return Client(args.url, api_key=args.api_key)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{what} {path} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{what} {path} must hold a JSON object, got {type(obj).__name__}")
    return obj


def _load_spec(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    from gsnn_edges.spec import SpecValidationError, TrainSpec

    spec = _read_json(path, "--spec")
    try:  # checked here, before anything is uploaded
        TrainSpec.from_dict(spec)
    except SpecValidationError as exc:
        raise ValueError(f"--spec {path}: {exc}") from None
    return spec


def _submit(args: argparse.Namespace) -> int:
    spec = _load_spec(args.spec)
    with _client(args) as c:
        graph_id = args.graph_id
        if graph_id is None:
            content = _read_json(args.graph, "--graph")
            missing = [k for k in ("nodes", "edges") if k not in content]
            if missing:
                raise ValueError(f"--graph {args.graph} lacks {missing}")
            name = args.name or content.get("name") or args.graph.stem
            graph = c.create_graph(content["nodes"], content["edges"], name=name)
            graph_id = graph["id"]
            counts = graph["counts"]
            print(
                f"graph    {graph_id}  ({counts['input']} inputs, {counts['function']} "
                f"functions, {counts['output']} outputs)"
            )
        dataset_id = args.dataset_id
        if dataset_id is None:
            dataset = c.upload_dataset(graph_id, args.data)
            dataset_id = dataset["id"]
            print(f"dataset  {dataset_id}  ({dataset['n_samples']} samples)")
        job = c.submit_job(
            graph_id,
            dataset_id,
            model=spec.get("model"),
            regressor=spec.get("regressor"),
            training=spec.get("training"),
            validation=spec.get("validation"),
            confirm=spec.get("confirm"),
            replicas=spec.get("replicas"),
            idempotency_key=args.idempotency_key,
        )
        print(f"job      {job['id']}  {job['status']}")
        print(f"watch:   {args.url.rstrip('/')}/ui/jobs/{job['id']}  (the dashboard)")
        if not args.wait:
            print(f"follow with: gsnn-edges status {job['id']} --url {args.url}")
            return 0
        job = c.wait(job["id"], poll=args.poll, progress=True)
        _print_job(job)
        print(f"results: gsnn-edges edges {job['id']} --url {args.url}")
    return 0


def _print_job(job: dict[str, Any]) -> None:
    print(f"job      {job['id']}")
    print(f"status   {job['status']}")
    prog = job.get("progress") or {}
    if prog:
        parts = [f"epoch {prog.get('epoch')}/{prog.get('epochs')}"]
        for key in ("train_loss", "val_auc", "val_mrr"):
            if prog.get(key) is not None:
                parts.append(f"{key} {prog[key]:.4f}")
        if prog.get("best_epoch") is not None:
            parts.append(f"best_epoch {prog['best_epoch']}")
        if prog.get("stage"):
            parts.append(f"stage {prog['stage']}")
        print("progress " + ", ".join(parts))
    for r in job.get("replicas") or []:
        rp = r.get("progress") or {}
        epoch = f", epoch {rp.get('epoch')}/{rp.get('epochs')}" if rp else ""
        print(f"replica  {r['replica']}: {r['status']}{epoch}")
    if job.get("device"):
        print(f"device   {job['device']}")
    if job.get("error"):
        print(f"error    {job['error']['type']}: {job['error']['message']}")
    for key in ("created_at", "started_at", "finished_at"):
        if job.get(key):
            print(f"{key.split('_')[0]:<8} {job[key]}")


def _status(args: argparse.Namespace) -> int:
    with _client(args) as c:
        _print_job(c.job(args.job_id))
    return 0


def _edges(args: argparse.Namespace) -> int:
    import pandas as pd

    limit = args.limit if args.limit is not None or args.csv else 20
    with _client(args) as c:
        frame = c.edges(
            args.job_id,
            min_score=args.min_score,
            max_q_value=args.max_q_value,
            max_confirm_q_value=args.max_confirm_q_value,
            candidates_only=not args.all_pairs,
            limit=limit,
            format="csv" if args.csv and limit is None else "json",
        )
    if args.csv:
        frame.to_csv(args.csv, index=False)
        print(f"wrote {len(frame)} rows to {args.csv}")
        return 0
    if frame.empty:
        print("no pairs match")
        return 0
    with pd.option_context("display.width", 120, "display.max_rows", None):
        print(frame.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    return 0
