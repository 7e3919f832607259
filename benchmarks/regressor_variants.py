"""Regressor-side variants compared on identical inputs (paired, no GSNN noise).

The GSNN trains once per seed with the library defaults. Beside the real regressor, one
shadow ``MagnitudeEdgeRegressor`` per variant (the same class, on the same GSNN) takes
a step on exactly the terms the real one sees, with its own learning-rate schedule and
its own random numbers (forked, so the real run is untouched). Each variant runs in
``--replicas`` copies that differ only in their random numbers (W's initialisation and
dropout masks); their AUCs are averaged per seed, because that noise alone moves one
run's test AUC by a few hundredths. Since W never feeds back
into the GSNN, the variants differ only in how W is fitted. Each is scored at the end of
training on the test edges (validation edges excluded) and compared with the exact
ridge solution on the same terms (``ceiling.py``) and with the constant-rate variant,
seed by seed.

    python benchmarks/regressor_variants.py --families benchmark --seeds 0 1 2 3 4 5 6 7 8 9
"""

from __future__ import annotations

import math
import time
from unittest import mock

import numpy as np
import torch

import gsnn_edges.train
from gsnn_edges import metrics
from gsnn_edges.experiment import run_experiment
from gsnn_edges.inference.regressor import MagnitudeEdgeRegressor, regressor_lr_schedule

from ceiling import _Probe, _ProbedRegressor
from common import FAMILIES, base_parser, make_spec, run_pairs, write_json

# name: (lr, ridge, lr schedule, EMA decay of W used for scoring or None)
VARIANTS = {
    "constant": (1e-3, 1e-2, "constant", None),
    "cosine": (1e-3, 1e-2, "cosine", None),
    "constant+ema0.99": (1e-3, 1e-2, "constant", 0.99),
    "lr3e-4+cosine": (3e-4, 1e-2, "cosine", None),
    "ridge0.2+cosine": (1e-3, 0.2, "cosine", None),
}


class _Shadow:
    """One variant: a real regressor stepped on given terms with private random numbers."""

    def __init__(
        self, real: MagnitudeEdgeRegressor, data, variant: tuple, total_steps: int, seed: int
    ):
        lr, ridge, schedule, self.ema = variant
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.reg = MagnitudeEdgeRegressor(
                real.model,
                data,
                aggregators=real.aggregators,
                lr=lr,
                ridge=ridge,
                dropout=real.dropout,
            )
            self.rng = torch.get_rng_state()
        self.schedule = regressor_lr_schedule(self.reg, total_steps, schedule)
        self.avg = None

    def step(self, X: torch.Tensor, Y: torch.Tensor) -> None:
        with torch.random.fork_rng(devices=[]):
            torch.set_rng_state(self.rng)
            self.reg._step(X, Y)
            self.rng = torch.get_rng_state()
        if self.schedule is not None:
            self.schedule.step()
        if self.ema is not None:
            w = self.reg.W.detach()
            self.avg = w.clone() if self.avg is None else self.avg.lerp_(w, 1 - self.ema)

    def scores(self) -> np.ndarray:
        return (self.avg if self.avg is not None else self.reg.W.detach()).abs().cpu().numpy()


class _ShadowedRegressor(_ProbedRegressor):
    total_steps = 0
    replicas = 3

    def __init__(self, model, data, **kwargs) -> None:
        super().__init__(model, data, **kwargs)
        self.shadows = {
            name: [
                _Shadow(self, data, v, self.total_steps, seed=1000 + 100 * i + r)
                for r in range(self.replicas)
            ]
            for i, (name, v) in enumerate(VARIANTS.items())
        }

    def _step(self, X, Y):
        for replicas in self.shadows.values():
            for shadow in replicas:
                shadow.step(X, Y)
        return super()._step(X, Y)


def one_seed(family: str, seed: int, replicas: int) -> dict:
    spec = make_spec(None, {}, seed)
    _ShadowedRegressor.replicas = replicas
    n_train = 2000  # run_experiment's default
    _ShadowedRegressor.probe = _Probe()
    _ShadowedRegressor.total_steps = spec.training.epochs * math.ceil(
        n_train / spec.training.batch_size
    )
    t0 = time.perf_counter()
    with mock.patch.object(gsnn_edges.train, "MagnitudeEdgeRegressor", _ShadowedRegressor):
        run = run_experiment(FAMILIES[family](seed), spec, n_train=n_train)
    reg = run.result.regressor
    _, in_graph, test, val = run_pairs(run)
    auc = lambda S: metrics.score_matrix_metrics(S, in_graph, test, exclude=val)["auc"]
    runs = {k: [auc(s.scores()) for s in replicas] for k, replicas in reg.shadows.items()}
    aucs = {"exact ridge": auc(_ShadowedRegressor.probe.scores()["ridge"])}
    aucs.update({k: float(np.mean(v)) for k, v in runs.items()})
    return {"seed": seed, "seconds": time.perf_counter() - t0, "auc": aucs, "replicas": runs}


def main() -> None:
    ap = base_parser(__doc__, default_out="benchmarks/results/regressor_variants.json")
    ap.add_argument("--replicas", type=int, default=3, help="shadows per variant (RNG only)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    report = {}
    print(
        f"{'family':<18} {'variant':<18} {'test AUC':>15} {'- constant':>17} "
        f"{'- exact ridge':>17} {'RNG sd':>7}"
    )
    for fam in args.families:
        runs = [one_seed(fam, s, args.replicas) for s in args.seeds]
        report[fam] = runs
        auc = {k: np.array([r["auc"][k] for r in runs]) for k in runs[0]["auc"]}
        se = lambda d: d.std() / math.sqrt(len(d))
        for k, v in auc.items():
            d1, d2 = v - auc["constant"], v - auc["exact ridge"]
            # spread between replicas of one seed: the noise of W's own random numbers
            sd = np.mean([np.std(r["replicas"][k], ddof=1) for r in runs]) if k in VARIANTS else 0
            print(
                f"{fam:<18} {k:<18} {v.mean():.3f} +/- {v.std():.3f} "
                f"{d1.mean():+.3f} (se {se(d1):.3f}) {d2.mean():+.3f} (se {se(d2):.3f}) {sd:7.3f}"
            )
    write_json(args.out, {"seeds": args.seeds, "replicas": args.replicas, "runs": report})


if __name__ == "__main__":
    main()
