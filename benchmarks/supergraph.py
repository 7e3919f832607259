"""A measured lead for latent targets, kept out of the service: train on a super-graph.

The GSNN trains on the partial graph plus every candidate function -> function edge
(spec defaults otherwise). A candidate then scores by how much the loss depends on its
edge state: the sum over training rows of the squared gradient of each row's loss with
respect to a multiplier on the edge (``GSNN.forward``'s ``edge_mask``, all ones). This
is a Fisher-style first-order importance of the whole fitted edge, where the score test
asks what an absent edge would add. Test AUC as ``recovery.py`` computes it (validation
edges excluded) and, as a check, the validation edges' AUC with the test edges excluded.
Nothing is tuned on either. Each run also reports the AUC of the table the service's
hybrid would serve: the observed baseline's pairs first, the super-graph's after them.
``--latent-only`` adds only the candidate edges into latent targets (those the hybrid
leaves to the GSNN).

``--paired-with`` takes a ``recovery.py --config defaults`` JSON of the same (single)
family and seeds and prints the paired difference from each of its scorers.

    python benchmarks/supergraph.py --families layered_many_obs --seeds 0 1 2 3 4 5 6 7 8 9 \\
        --paired-with benchmarks/results/recovery.json
"""

from __future__ import annotations

import json

import numpy as np
import torch

from gsnn_edges.graph import EDGE_TYPES, FF, GSNNGraph
from gsnn_edges.inference.observed_baseline import observed_baseline
from gsnn_edges.metrics import score_matrix_metrics
from gsnn_edges.train import _build_model

from common import base_parser, paired_difference, seed_data, write_json

_IF, _FO = EDGE_TYPES[0], EDGE_TYPES[2]
ROWS_PER_PASS = 256


def one_seed(family: str, seed: int, latent_only: bool = False) -> dict:
    sd = seed_data(family, seed)
    g, spec, split, in_graph = sd.bench.partial, sd.spec, sd.split, sd.in_graph
    n = len(sd.names)
    base = observed_baseline(g, split.x_train.numpy(), split.y_train.numpy())
    open_pairs = ~in_graph & ~np.eye(n, dtype=bool)
    if latent_only:  # only what the hybrid leaves to the GSNN: pairs into latent targets
        open_pairs &= ~base.observed_target[None, :]
    cand = np.argwhere(open_pairs)  # [M, 2]
    eid = {k: np.asarray(v) for k, v in g.edge_index_dict.items()}
    ff = np.concatenate([eid[FF], cand.T], axis=1)
    super_graph = GSNNGraph(g.node_names_dict, {_IF: eid[_IF], FF: ff, _FO: eid[_FO]})
    torch.manual_seed(seed)
    model = _build_model(super_graph, spec, torch.device("cpu"))
    opt = torch.optim.AdamW(model.parameters(), lr=spec.training.lr)
    x, y, bs = split.x_train, split.y_train, spec.training.batch_size
    for _ in range(spec.training.epochs):
        model.train()
        perm = torch.randperm(len(x))
        for i in range(0, len(x), bs):
            rows = perm[i : i + bs]
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x[rows]), y[rows]).backward()
            opt.step()
    model.eval()
    # homogeneous edge order: input -> function, then function -> function (ours first)
    cand_edges = eid[_IF].shape[1] + eid[FF].shape[1] + torch.arange(len(cand))
    fisher = torch.zeros(len(cand))
    for i in range(0, len(x), ROWS_PER_PASS):
        xb, yb = x[i : i + ROWS_PER_PASS], y[i : i + ROWS_PER_PASS]
        mask = torch.ones(len(xb), model.n_edges, requires_grad=True)
        loss = (model(xb, edge_mask=mask) - yb).square().sum()  # per-row losses, summed
        (grad,) = torch.autograd.grad(loss, mask)
        fisher += grad[:, cand_edges].square().sum(0)
    with torch.no_grad():
        pred, yt = model(split.x_test), split.y_test
        r2 = 1 - (pred - yt).square().sum(0) / (yt - yt.mean(0)).square().sum(0)
    S = np.full((n, n), np.nan)
    S[cand[:, 0], cand[:, 1]] = fisher.numpy()
    pos, val_pos = sd.test, sd.val
    # as the hybrid ranks: the baseline's pairs first in its order, then the super-graph's
    use_base = np.isfinite(base.scores)
    H = np.where(use_base, 2.0 + base.scores, np.arctan(np.nan_to_num(S, nan=-1.0)) / np.pi)
    return {
        "seed": seed,
        "test_auc": score_matrix_metrics(S, in_graph, pos, exclude=val_pos)["auc"],
        "hybrid_test_auc": score_matrix_metrics(H, in_graph, pos, exclude=val_pos)["auc"],
        "val_auc": score_matrix_metrics(S, in_graph, val_pos, exclude=pos)["auc"],
        "test_r2": float(r2.mean()),
    }


def main() -> None:
    ap = base_parser(__doc__, default_out="benchmarks/results/supergraph.json")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--paired-with", help="recovery.py JSON of the same family and seeds")
    ap.add_argument(
        "--latent-only",
        action="store_true",
        help="add only candidate edges into latent targets (those the hybrid leaves to the GSNN)",
    )
    args = ap.parse_args()
    reference = None
    if args.paired_with:
        reference = json.loads(open(args.paired_with).read())
        if len(args.families) != 1:
            ap.error("--paired-with pairs one family: give one --families value")
        family = args.families[0]
        # recovery.py's JSON records its family since 2026-12-06; older ones cannot be checked
        if reference.get("config") != "defaults" or reference.get("family", family) != family:
            ap.error(
                f"--paired-with holds config {reference.get('config')!r}, family "
                f"{reference.get('family')!r}: want 'defaults', {family!r}"
            )
    torch.set_num_threads(args.threads)
    results = {}
    for family in args.families:
        runs = []
        for seed in args.seeds:
            runs.append(one_seed(family, seed, args.latent_only))
            print(family, runs[-1], flush=True)
        results[family] = runs
        auc = np.array([r["test_auc"] for r in runs])
        val = np.array([r["val_auc"] for r in runs])
        r2 = np.mean([r["test_r2"] for r in runs])
        print(f"\n{family}: test AUC {auc.mean():.3f} +/- {auc.std():.3f}, validation AUC ", end="")
        print(f"{val.mean():.3f}, test r2 {r2:.3f}")
        hyb = np.array([r["hybrid_test_auc"] for r in runs])
        print(f"  ranked as the hybrid ranks (baseline pairs first): {hyb.mean():.3f}")
        if reference is not None:
            ref = {r["seed"]: r for r in reference["runs"]}
            for scorer in ("hybrid", "score_test", "online_best"):
                other = [ref[s][scorer]["auc"] for s in args.seeds]
                for label, ours in (("", auc), ("hybrid-ranked ", hyb)):
                    diff, se = paired_difference(ours, other)
                    higher = int((ours > np.array(other)).sum())
                    print(f"  {label}minus {scorer}: {diff:+.3f} ({se:.3f}), higher in {higher}")
    write_json(args.out, {"seeds": args.seeds, "runs": results})


if __name__ == "__main__":
    main()
