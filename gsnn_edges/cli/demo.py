"""`gsnn-edges demo`: the SPEC section 6 benchmark end to end, locally, no servers."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="run the converging-tier benchmark end to end on this machine",
        description="Simulate the converging-tier benchmark (SPEC section 6), train a GSNN on "
        "the graph with held-out edges removed while the online regressor scores every "
        "candidate edge, then report recovery of the held-out edges.",
    )
    p.add_argument("--out", default="demo-out", help="output directory (default: demo-out)")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default: spec default)")
    p.add_argument("--seed", type=int, default=0, help="simulation and training seed")
    p.add_argument("--width", type=int, default=25, help="benchmark width n (default 25)")
    p.add_argument("--samples", type=int, default=2000, help="training samples (default 2000)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument(
        "--confirm",
        type=int,
        default=50,
        help="confirm this many top candidates by refitting (spec confirm.top; 0: off)",
    )
    p.add_argument(
        "--serve",
        action="store_true",
        help="train the job on a served API and worker instead (gsnn-edges serve, no API "
        "keys, loopback), print its dashboard URL and keep serving",
    )
    p.add_argument("--port", type=int, default=8000, help="--serve: port (default 8000)")
    p.add_argument(
        "--serve-seconds",
        type=float,
        default=0,
        help="--serve: stop serving this long after the job ends (default 0: at Ctrl-C)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from gsnn_edges.cli.demo_report import print_report, write_outputs
    from gsnn_edges.experiment import posthoc_baseline, run_benchmark
    from gsnn_edges.spec import TrainSpec

    spec = TrainSpec()
    spec.training.seed = args.seed
    spec.training.device = args.device
    if args.epochs is not None:
        spec.training.epochs = args.epochs
    spec.confirm.top = args.confirm
    if args.serve:
        from gsnn_edges.cli.demo_serve import run_served

        return run_served(args, spec)
    print(
        f"gsnn-edges demo: converging-tier benchmark, width {args.width}, "
        f"{args.samples} training samples, {spec.training.epochs} epochs, seed {args.seed}"
    )
    t0 = time.perf_counter()
    run_ = run_benchmark(spec, width=args.width, n_train=args.samples, progress=True)
    seconds = time.perf_counter() - t0
    baseline = posthoc_baseline(run_)  # same trained GSNN, extra passes in eval mode
    out = Path(args.out)
    files = write_outputs(run_, out)
    print_report(run_, seconds, baseline)
    print("\nwrote " + ", ".join(str(f) for f in files))
    return 0
