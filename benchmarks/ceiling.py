"""Where edge recovery is lost: upper bounds computed on the same trained features.

Each seed trains exactly as ``recovery.py`` does (same spec and seed, so the online
figures match it) while a probe records, at every training step, the stacked magnitude
terms the regressor sees and the signed per-node channel sums of the same activations
and gradients. The probe only reads; it draws no random numbers. Test edges are then
scored (validation edges excluded) by:

- ``online``: the regressor's W after the last step (the product, no checkpoint choice);
- ``ridge``: the exact ridge solution on every stacked term seen, i.e. the same single
  linear W without optimizer noise -- the most the magnitude regression can give on
  these features;
- ``posthoc``: the post-hoc correlation baseline on the final model;
- ``signed``: |correlation| of the signed channel sums (activation at block l-1 against
  gradient at block l), summed over block pairs -- information the magnitude contract
  (SPEC section 3) throws away; ``signed_shared`` sums the signed correlations before
  taking |.|, i.e. forces one sign per pair across block pairs, as one shared W would.

Every source is scored twice: against all candidate pairs, and with candidate targets
restricted to observed function nodes (those with an output edge). The gap between the
two is the cost of unobserved targets, whose gradient is entirely inherited from their
children, so any proxy of a child's missing parent scores on them too.

    python benchmarks/ceiling.py --families benchmark --seeds 0 1 2 3 4 5 6 7 8 9
"""

from __future__ import annotations

import time
from unittest import mock

import numpy as np
import torch

import gsnn_edges.train
from gsnn_edges import metrics
from gsnn_edges.experiment import fit_posthoc, run_experiment
from gsnn_edges.graph import EDGE_TYPES
from gsnn_edges.inference.magnitudes import block_tensors
from gsnn_edges.inference.regressor import MagnitudeEdgeRegressor

from common import CONFIGS, FAMILIES, base_parser, make_spec, run_pairs, write_json

SOURCES = ("online", "ridge", "posthoc", "signed", "signed_shared")
RIDGE = 1.0  # per unit-variance feature; 0.01-100 were within 0.01 AUC of each other


def _zscore(v: torch.Tensor, dim: int) -> torch.Tensor:
    v = v - v.mean(dim, keepdim=True)
    return v * torch.rsqrt(v.square().mean(dim, keepdim=True) + 1e-10)


class _Probe:
    """Sufficient statistics of one training run, float64."""

    def __init__(self) -> None:
        self.xx = self.xy = self.signed = self.W = None
        self.rows = 0

    def add_magnitudes(self, X: torch.Tensor, Y: torch.Tensor, n_aggs: int) -> None:
        """Stacked terms as the regressor builds them. X: [N, T, B], Y: [N, P, B]."""
        n, t, b = X.shape
        Xf = _zscore(X.double(), -1).reshape(n, t * b)
        Yf = _zscore(Y.double(), -1)[:, :, None].expand(-1, -1, n_aggs, -1).reshape(n, t * b)
        xx, xy = Xf @ Xf.T, Xf @ Yf.T
        self.xx = xx if self.xx is None else self.xx.add_(xx)
        self.xy = xy if self.xy is None else self.xy.add_(xy)
        self.rows += t * b

    def add_signed(self, acts: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
        """Per-pair correlations of signed node sums. acts/grads: P tensors [B, N]."""
        c = torch.stack(
            [
                _zscore(a.double(), 0).T @ _zscore(g.double(), 0)
                for a, g in zip(acts, grads, strict=True)
            ]
        )
        self.signed = c if self.signed is None else self.signed.add_(c)

    def scores(self) -> dict[str, np.ndarray]:
        n = self.xx.shape[0]
        ridge = torch.linalg.solve(
            self.xx / self.rows + RIDGE * torch.eye(n, dtype=torch.float64), self.xy / self.rows
        )
        return {
            "online": self.W.abs().numpy(),
            "ridge": ridge.abs().numpy(),
            "signed": self.signed.abs().sum(0).numpy(),
            # one sign per pair (i, j) across block pairs, as a single shared W would need
            "signed_shared": self.signed.sum(0).abs().numpy(),
        }


class _ProbedRegressor(MagnitudeEdgeRegressor):
    """The product's regressor, unchanged, feeding :class:`_Probe` at every step."""

    probe: _Probe

    def _magnitudes(self):
        X, Y = super()._magnitudes()
        n = self.n_nodes
        node_sum = lambda t: t.reshape(t.shape[0], n, -1).sum(-1)  # uniform channel groups
        cached = block_tensors(self.model, self.use_pre_norm)
        self.probe.add_signed(
            [node_sum(t.detach()) for t in cached[:-1]], [node_sum(t.grad) for t in cached[1:]]
        )
        self.probe.add_magnitudes(X, Y, len(self.aggregators))
        return X, Y

    def _step(self, X, Y):
        out = super()._step(X, Y)
        self.probe.W = self.W.detach().double().clone()
        return out


def _observed_exclusion(bench, names: list[str]) -> np.ndarray:
    """All pairs ``(i, j)`` whose target ``j`` has no output edge, as ``[Q, 2]``."""
    observed = np.zeros(len(names), dtype=bool)
    observed[bench.partial.edge_index_dict[EDGE_TYPES[2]][0]] = True
    j = np.flatnonzero(~observed)
    return np.stack(np.meshgrid(np.arange(len(names)), j, indexing="ij"), -1).reshape(-1, 2)


def one_seed(config: dict | None, family: str, seed: int) -> dict:
    probe = _Probe()
    _ProbedRegressor.probe = probe
    t0 = time.perf_counter()
    with mock.patch.object(gsnn_edges.train, "MagnitudeEdgeRegressor", _ProbedRegressor):
        run = run_experiment(FAMILIES[family](seed), make_spec(config, {}, seed))
    names, in_graph, test, val = run_pairs(run)
    scores = probe.scores()
    last = run.result.metrics["last_epoch"]["test_edges"]["auc"]
    online = metrics.score_matrix_metrics(scores["online"], in_graph, test, exclude=val)["auc"]
    assert abs(online - last) < 1e-6, f"probe W disagrees with the last epoch: {online} vs {last}"
    scores["posthoc"] = fit_posthoc(run).score_matrix().cpu().numpy()
    unobserved = _observed_exclusion(run.bench, names)
    keep = ~np.isin(test[:, 1], unobserved[:, 1])
    out = {
        "seed": seed,
        "seconds": time.perf_counter() - t0,
        "n_test": len(test),
        "n_test_observed": int(keep.sum()),
    }
    for name, S in scores.items():
        m = metrics.score_matrix_metrics(S, in_graph, test, exclude=val)
        out[name] = {"auc": m["auc"], "mrr": m["mrr"]}
        if keep.any():
            m = metrics.score_matrix_metrics(
                S, in_graph, test[keep], exclude=np.concatenate([val, unobserved])
            )
            out[name]["auc_observed"] = m["auc"]
    return out


def main() -> None:
    ap = base_parser(__doc__, default_out="benchmarks/results/ceiling.json")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="defaults")
    args = ap.parse_args()
    torch.set_num_threads(2)
    report = {}
    print(
        f"{'family':<18} {'source':<8} {'test AUC':>15} {'AUC, observed targets':>22} {'MRR':>15}"
    )
    for fam in args.families:
        runs = [one_seed(CONFIGS[args.config], fam, s) for s in args.seeds]
        report[fam] = runs
        for src in SOURCES:
            cells = []
            for key in ("auc", "auc_observed", "mrr"):
                v = np.array([r[src].get(key, np.nan) for r in runs], dtype=float)
                v = v[np.isfinite(v)]
                cells.append(f"{v.mean():.3f} +/- {v.std():.3f}" if v.size else "-")
            print(f"{fam:<18} {src:<8} {cells[0]:>15} {cells[1]:>22} {cells[2]:>15}")
    write_json(
        args.out, {"config": args.config, "seeds": args.seeds, "ridge": RIDGE, "runs": report}
    )


if __name__ == "__main__":
    main()
