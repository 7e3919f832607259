"""Calibration of the edge table's q-values: power and false discoveries among missing
edges, and false discoveries under a null (the complete true graph), several seeds.

For each family and seed, two runs with the library defaults plus ``confirm.top``:

- **missing edges**: the model trains on the graph without its held-out edges (validation
  half selects the checkpoint, as in ``recovery.py``); every held-out edge is a true
  discovery. Reports power (share of held-out edges with q < 0.1) and the false discovery
  proportion (FDP) among pairs with q < 0.1;
- **null**: the model trains on the complete true graph (nothing missing, no validation
  edges): every candidate is a non-edge. Reports discoveries at q < 0.1 and the KS
  statistic of the confirmed p-values against the uniform.

Both for the screening q-values (``q_value``, the table's scorer) and the confirmation's
(``confirm_q_value``, ``gsnn_edges.inference.confirm``), and for the confirmation's also
counted by equivalent set (``confirm_set``: a discovery is true when it or one of its
equivalent sources, ``equivalent_sources``, is a held-out edge: the claim "this edge or
an equivalent is missing" that held-out prediction can make).

``--min-effects M1 M2 ...`` re-tests the same fits against each ``confirm.min_effect`` M
(``confirm_at_M``; the edge FDP and, as ``set_fdp``, the equivalent-set one): the paired
t-test's standard error is recovered from each candidate's effect and p-value
(``t = (effect - margin) / se``) and the test redone with the other margin, without
refitting. Run with ``--patch '{"confirm": {"min_effect": 0}}'`` for the margin's whole
range.

    python benchmarks/calibration.py --families benchmark --seeds 0 1 2 --top 50
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from scipy import stats

from gsnn_edges.experiment import run_experiment
from gsnn_edges.inference.confirm import confirm_edges, effect_margin, set_covers
from gsnn_edges.inference.edge_table import function_edge_mask
from gsnn_edges.inference.score_test import ScoreTestScorer
from gsnn_edges.metrics import bh_qvalues
from gsnn_edges.simulate import converging_tier_graph, simulate_frame
from gsnn_edges.train import RunSetup, refine_for_confirmation, train_joint, without_reverses

from common import FAMILIES, add_patch_argument, base_parser, make_spec, write_json

ALPHA = 0.1
Q_COLUMNS = {"screen": "q_value", "confirm": "confirm_q_value", "confirm_set": "confirm_q_value"}


def retested_q(cand: pd.DataFrame, confirm: dict, graph, min_effect: float) -> np.ndarray:
    """``confirm_q_value`` of the candidates ``cand`` had their confirmation tested against
    ``min_effect`` instead of the run's (``confirm``: its ``metrics.confirm``): the same
    effects and standard errors, the shifted one-sided t-test, BH over the confirmed."""
    q = np.full(len(cand), np.nan)
    done = cand.confirmed.to_numpy(bool)
    effect, p = cand.effect.to_numpy(float)[done], cand.confirm_p_value.to_numpy(float)[done]
    dof, margin = confirm["heldout_rows"] - 1, effect_margin(graph, min_effect)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = (effect - confirm["effect_margin"]) / stats.t.isf(p, dof)
        new = stats.t.sf((effect - margin) / se, dof)
    # p of 0 (beyond float range), 0.5 (effect at the run's margin) or 1 (constant rows):
    # decided by the effect's side of the margin
    new = np.where(np.isfinite(new) & (se > 0), new, np.where(effect > margin, 0.0, 1.0))
    q[done] = bh_qvalues(new)
    return q


def discoveries(
    edges: pd.DataFrame,
    truth: set[tuple[str, str]],
    graph,
    confirm: dict | None = None,
    min_effects: Sequence[float] = (),
) -> dict:
    """Per q column: discoveries at q < ALPHA among candidates, and how many are true
    (``confirm_set``: how many cover a true edge with their equivalents in ``graph``, the
    graph the model trained on); ``confirm_at_M``: the confirmation re-tested at each of
    ``min_effects`` (:func:`retested_q`; ``confirm``: the run's ``metrics.confirm``)."""
    cand = edges.loc[~edges.has_edge.to_numpy(bool)]
    pairs = list(zip(cand.src_func.astype(str), cand.dst_func.astype(str), strict=True))
    is_true = np.array([p in truth for p in pairs], dtype=bool)
    columns = {name: cand[col].to_numpy(float) for name, col in Q_COLUMNS.items()}
    for m in min_effects:
        columns[f"confirm_at_{m:g}"] = retested_q(cand, confirm, graph, m)
    out = {}
    for name, qv in columns.items():
        hit = (qv < ALPHA) & ~np.isnan(qv)
        covers = np.zeros(len(cand), dtype=bool)  # a discovery or an equivalent is true
        if name != "screen":  # hundreds of screening discoveries; their sets are not counted
            covers[hit] = set_covers(graph, cand.loc[hit, ["src_idx", "dst_idx"]].to_numpy(), truth)
        true = covers if name == "confirm_set" else is_true
        n, tp = int(hit.sum()), int((hit & true).sum())
        extra = {}
        if name.startswith("confirm_at"):
            extra["set_fdp"] = float(1 - covers[hit].mean()) if n else 0.0
        out[name] = {
            **extra,
            "discoveries": n,
            "true": tp,
            "false": n - tp,
            # a set discovery may cover several held-out edges: its power is not counted
            "power": tp / len(truth) if truth and name != "confirm_set" else None,
            "fdp": (n - tp) / n if n else 0.0,
        }
    p = cand.loc[cand.confirmed.to_numpy(bool), "confirm_p_value"].to_numpy(float)
    out["confirm_ks"] = float(stats.kstest(p, "uniform").statistic) if p.size else None
    return out


def model_null(result, data: pd.DataFrame, graph, spec, top: int, seed: int) -> dict:
    """The confirmation's own null: outputs redrawn from the trained (complete-graph) GSNN
    itself plus Gaussian noise of its training loss, on the run's own split, so the model
    is exactly right and no added edge can improve prediction. Candidates are the score
    test's top ``top`` on the training rows less reverses of better ones, as the service
    would screen them (:func:`~gsnn_edges.train.without_reverses`); they are
    confirmed on the model refined on the redrawn training rows
    (``confirm.refine_epochs`` of ``spec``) and tested against its ``confirm.min_effect``,
    as the service confirms."""
    setup = RunSetup.prepare(graph, data, spec)
    s, model = setup.split, result.model.eval()
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        sigma = float(torch.nn.functional.mse_loss(model(s.x_train), s.y_train)) ** 0.5
        redraw = lambda x: (
            model(x) + sigma * torch.randn(x.shape[0], s.y_train.shape[1], generator=gen)
        )
        split = dataclasses.replace(s, y_train=redraw(s.x_train), y_test=redraw(s.x_test))
    setup = dataclasses.replace(setup, split=split)
    batches = setup.training_batches()
    q = ScoreTestScorer(model, graph).fit(batches).score_matrix().numpy()
    q[function_edge_mask(graph, q.shape[0])] = -np.inf
    np.fill_diagonal(q, -np.inf)
    order = np.argsort(-q, axis=None)
    order = order[np.isfinite(q.ravel()[order])]  # not the graph's edges nor the diagonal
    pairs = without_reverses(np.stack(np.unravel_index(order, q.shape), 1))[:top]
    base = refine_for_confirmation(setup, model)
    c = confirm_edges(
        base,
        graph,
        pairs,
        batches,
        split.x_test,
        split.y_test,
        min_effect=spec.confirm.min_effect,
    )
    return {
        "discoveries": int((c.q_values < ALPHA).sum()),
        "ks": float(stats.kstest(c.p_values, "uniform").statistic),
    }


def one_seed(
    family: str,
    seed: int,
    top: int,
    null: bool,
    width: int | None = None,
    rows: int = 2000,
    patch: dict | None = None,
    min_effects: Sequence[float] = (),
) -> dict:
    """One run; ``width`` resizes the benchmark family (SPEC section 6: 25), ``rows`` are
    the training rows simulated (plus the test share), ``patch`` spec blocks merged into
    the library defaults."""
    patch = dict(patch or {})
    patch["confirm"] = {**patch.get("confirm", {}), "top": top}
    spec = make_spec(None, patch, seed)
    bench = (
        converging_tier_graph(width) if family == "benchmark" and width else FAMILIES[family](seed)
    )
    t0 = time.perf_counter()
    if null:
        bench = dataclasses.replace(bench, partial=bench.full, held_out=[])
        n_total = int(round(rows / (1 - spec.training.test_fraction)))
        data = simulate_frame(bench.full, n_total, noise_scale=0.15, seed=seed)
        result = train_joint(bench.full, data, spec)
    else:
        run = run_experiment(bench, spec, n_train=rows)
        result, data = run.result, run.data
    truth = {tuple(e) for e in bench.held_out}
    extra = {"model_null": model_null(result, data, bench.full, spec, top, seed)} if null else {}
    return {
        **extra,
        "seed": seed,
        "seconds": time.perf_counter() - t0,
        "confirm_seconds": result.metrics["confirm"]["seconds"],
        "train_seconds": result.metrics["timing"]["train_seconds"],
        "n_held_out": len(truth),
        **discoveries(result.edges, truth, bench.partial, result.metrics["confirm"], min_effects),
    }


def summarise(runs: list[dict], null: bool, min_effects: Sequence[float] = ()) -> dict:
    out = {}
    for name in [*Q_COLUMNS, *(f"confirm_at_{m:g}" for m in min_effects)]:
        fdp = np.array([r[name]["fdp"] for r in runs])
        false = np.array([r[name]["false"] for r in runs])
        row = {
            "discoveries": float(np.mean([r[name]["discoveries"] for r in runs])),
            "fdp_mean": float(fdp.mean()),
            "seeds_fdp_le_0.2": int((fdp <= 0.2).sum()),
            "seeds_at_most_1_false": int((false <= 1).sum()),
        }
        if not null and name != "confirm_set":
            row["power_mean"] = float(np.mean([r[name]["power"] for r in runs]))
        if not null and "set_fdp" in runs[0][name]:
            row["set_fdp_mean"] = float(np.mean([r[name]["set_fdp"] for r in runs]))
        out[name] = row
    if null:
        disc = np.array([r["model_null"]["discoveries"] for r in runs])
        out["model_null"] = {
            "discoveries": float(disc.mean()),
            "seeds_at_most_1_false": int((disc <= 1).sum()),
            "ks_mean": float(np.mean([r["model_null"]["ks"] for r in runs])),
        }
    ks = [r["confirm_ks"] for r in runs if r["confirm_ks"] is not None]
    out["confirm_ks_mean"] = float(np.mean(ks)) if ks else None
    out["confirm_over_train_seconds"] = float(
        np.mean([r["confirm_seconds"] / r["train_seconds"] for r in runs])
    )
    return out


def main() -> None:
    ap = base_parser(__doc__, default_out="benchmarks/results/calibration.json")
    ap.add_argument("--top", type=int, default=50, help="confirm.top of every run")
    ap.add_argument("--threads", type=int, default=2, help="torch threads")
    ap.add_argument("--runs", nargs="+", choices=["missing", "null"], default=["missing", "null"])
    ap.add_argument("--width", type=int, help="width of the benchmark family (default 25)")
    ap.add_argument("--rows", type=int, default=2000, help="training rows simulated")
    ap.add_argument(
        "--min-effects",
        type=float,
        nargs="*",
        default=[],
        help="also re-test the confirmation against each of these confirm.min_effect",
    )
    add_patch_argument(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    report = {
        "top": args.top,
        "seeds": args.seeds,
        "alpha": ALPHA,
        "width": args.width,
        "rows": args.rows,
        "patch": args.patch,
        "families": {},
    }
    for family in args.families:
        for kind in args.runs:
            null = kind == "null"
            runs = []
            for seed in args.seeds:
                r = one_seed(
                    family,
                    seed,
                    args.top,
                    null,
                    args.width,
                    args.rows,
                    args.patch,
                    args.min_effects,
                )
                runs.append(r)
                cells = "  ".join(
                    f"{n}: {r[n]['true']}/{r[n]['discoveries']} true" for n in Q_COLUMNS
                )
                print(
                    f"{family:<17} {kind:<7} seed {seed}  {cells}  ks {r['confirm_ks']}", flush=True
                )
            report["families"][f"{family}/{kind}"] = {
                "summary": summarise(runs, null, args.min_effects),
                "runs": runs,
            }
            write_json(args.out, report)  # after every block: a long sweep keeps its parts
    print(f"\ntop={args.top}  seeds={args.seeds}  q < {ALPHA}")
    head = (
        f"{'family/run':<26}{'q':<18}{'disc':>6}{'power':>7}{'FDP':>6}{'FDP<=.2':>8}{'<=1 FD':>7}"
    )
    print(head + f"{'KS':>6}{'set FDP':>8}")
    names = [*Q_COLUMNS, *(f"confirm_at_{m:g}" for m in args.min_effects)]
    for key, block in report["families"].items():
        s = block["summary"]
        for name in names:
            row = s[name]
            power = f"{row['power_mean']:.2f}" if "power_mean" in row else "-"
            ks = f"{s['confirm_ks_mean']:.2f}" if name == "confirm" and s["confirm_ks_mean"] else ""
            set_fdp = f"{row['set_fdp_mean']:.2f}" if "set_fdp_mean" in row else ""
            print(
                f"{key:<26}{name:<18}{row['discoveries']:>6.1f}{power:>7}{row['fdp_mean']:>6.2f}"
                f"{row['seeds_fdp_le_0.2']:>8}{row['seeds_at_most_1_false']:>7}{ks:>6}{set_fdp:>8}"
            )
        if "model_null" in s:
            mn = s["model_null"]
            print(
                f"{key:<26}{'model':<18}{mn['discoveries']:>6.1f}{'-':>7}{'':>6}{'':>8}"
                f"{mn['seeds_at_most_1_false']:>7}{mn['ks_mean']:>6.2f}"
            )
    write_json(args.out, report)


if __name__ == "__main__":
    main()
