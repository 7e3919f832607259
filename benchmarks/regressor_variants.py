"""Regressor-side variants compared on identical inputs (paired, no GSNN noise).

The GSNN trains once per seed with the library defaults. At every step, shadow copies of
the regressor's W -- one per variant, each with its own AdamW -- take a step on exactly
the terms the real regressor sees (same standardisation, dropout on W with a separate
generator, so the real run is untouched). Since W never feeds back into the GSNN, the
variants differ only in how W is fitted. Each is scored at the end of training on the
test edges (validation edges excluded) and compared with the exact ridge solution on
the same terms (``ceiling.py``) and with the constant-rate variant, seed by seed.

    python benchmarks/regressor_variants.py --families benchmark --seeds 0 1 2 3 4 5 6 7 8 9
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from unittest import mock

import numpy as np
import torch

import gsnn_edges.train
from gsnn_edges import metrics
from gsnn_edges.experiment import run_experiment
from gsnn_edges.inference.edge_table import pair_indices
from gsnn_edges.inference.regressor_stats import EPS
from gsnn_edges.train import LR_FLOOR

from ceiling import _Probe, _ProbedRegressor
from common import FAMILIES, make_spec

# name: (lr, ridge, schedule, EMA decay of W used for scoring or None)
VARIANTS = {
    "constant": (1e-3, 1e-2, "constant", None),
    "cosine": (1e-3, 1e-2, "cosine", None),
    "constant+ema0.99": (1e-3, 1e-2, "constant", 0.99),
    "lr3e-4": (3e-4, 1e-2, "constant", None),
    "lr3e-4+cosine": (3e-4, 1e-2, "cosine", None),
    "ridge0.2+cosine": (1e-3, 0.2, "cosine", None),
}


def _zscore(v: torch.Tensor) -> torch.Tensor:
    c = v - v.mean(-1, keepdim=True)
    return c * torch.rsqrt(c.square().mean(-1, keepdim=True) + EPS)


class _ShadowW:
    """One variant's W, stepped like ``MagnitudeEdgeRegressor._step`` (dropout 0.2)."""

    def __init__(self, n: int, variant: tuple, total_steps: int, gen: torch.Generator) -> None:
        self.lr, self.ridge, self.schedule, self.ema = variant
        self.total, self.steps, self.gen = total_steps, 0, gen
        self.W = torch.nn.Parameter(torch.empty(n, n))
        torch.nn.init.xavier_uniform_(self.W, gain=0.1, generator=gen)
        self.opt = torch.optim.AdamW([self.W], lr=self.lr, weight_decay=1e-4)
        self.avg = None

    @torch.no_grad()
    def step(self, X: torch.Tensor, Y: torch.Tensor, n_aggs: int) -> None:
        n, t, b = X.shape
        Xf = _zscore(X).reshape(n, t * b)
        Yf = _zscore(Y)[:, :, None].expand(-1, -1, n_aggs, -1).reshape(n, t * b)
        mask = (torch.rand(self.W.shape, generator=self.gen) < 0.8).float() / 0.8
        resid = torch.addmm(Yf, (self.W * mask).t(), Xf, beta=-1)
        grad = (Xf @ resid.t()).mul_(mask).mul_(2.0 / (b * n)).add_(self.W, alpha=2 * self.ridge)
        if self.schedule == "cosine":
            frac = min(self.steps, self.total) / self.total
            f = LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * frac))
            self.opt.param_groups[0]["lr"] = self.lr * f
        self.W.grad = grad
        self.opt.step()
        self.W.grad = None
        self.steps += 1
        if self.ema is not None:
            w = self.W.detach()
            self.avg = w.clone() if self.avg is None else self.avg.lerp_(w, 1 - self.ema)

    def scores(self) -> np.ndarray:
        return (self.avg if self.avg is not None else self.W.detach()).abs().numpy()


class _ShadowedRegressor(_ProbedRegressor):
    shadows: dict[str, _ShadowW] | None = None
    total_steps = 0

    def _step(self, X, Y):
        cls = type(self)
        if cls.shadows is None:
            gen = torch.Generator().manual_seed(1234)
            cls.shadows = {
                k: _ShadowW(self.n_nodes, v, cls.total_steps, gen) for k, v in VARIANTS.items()
            }
        for shadow in cls.shadows.values():
            shadow.step(X, Y, len(self.aggregators))
        return super()._step(X, Y)


def one_seed(family: str, seed: int) -> dict:
    spec = make_spec(None, {}, seed)
    n_train = 2000  # run_experiment's default
    _ShadowedRegressor.probe, _ShadowedRegressor.shadows = _Probe(), None
    _ShadowedRegressor.total_steps = spec.training.epochs * math.ceil(
        n_train / spec.training.batch_size
    )
    t0 = time.perf_counter()
    with mock.patch.object(gsnn_edges.train, "MagnitudeEdgeRegressor", _ShadowedRegressor):
        run = run_experiment(FAMILIES[family](seed), spec, n_train=n_train)
    reg = run.result.regressor
    names, in_graph = reg.node_names, reg.in_graph.cpu().numpy()
    test, val = pair_indices(run.test_edges, names), pair_indices(run.val_edges, names)
    scores = {"exact ridge": _ShadowedRegressor.probe.scores()["ridge"]}
    scores.update({k: s.scores() for k, s in _ShadowedRegressor.shadows.items()})
    aucs = {
        k: metrics.score_matrix_metrics(S, in_graph, test, exclude=val)["auc"]
        for k, S in scores.items()
    }
    return {"seed": seed, "seconds": time.perf_counter() - t0, "auc": aucs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--families", nargs="+", default=list(FAMILIES))
    ap.add_argument("--out", default="benchmarks/results/regressor_variants.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    report = {}
    print(
        f"{'family':<18} {'variant':<18} {'test AUC':>15} {'- constant':>17} {'- exact ridge':>17}"
    )
    for fam in args.families:
        runs = [one_seed(fam, s) for s in args.seeds]
        report[fam] = runs
        auc = {k: np.array([r["auc"][k] for r in runs]) for k in runs[0]["auc"]}
        se = lambda d: d.std() / math.sqrt(len(d))
        for k, v in auc.items():
            d1, d2 = v - auc["constant"], v - auc["exact ridge"]
            print(
                f"{fam:<18} {k:<18} {v.mean():.3f} +/- {v.std():.3f} "
                f"{d1.mean():+.3f} (se {se(d1):.3f}) {d2.mean():+.3f} (se {se(d2):.3f})"
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"seeds": args.seeds, "runs": report}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
