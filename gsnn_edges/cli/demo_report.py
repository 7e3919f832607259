"""Tables, plot and files written by `gsnn-edges demo`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gsnn_edges.experiment import BenchmarkRun, edge_labels
from gsnn_edges.inference.confirm import set_covers
from gsnn_edges.metrics import roc_curve


def _fmt(v: float | None) -> str:
    return "   -  " if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:6.3f}"


def print_report(run: BenchmarkRun, seconds: float, baseline: dict | None = None) -> None:
    m = run.result.metrics
    chosen = m["scorer"]
    rows = {f"validation, {chosen}": m["validation"]}
    rows.update({f"test, {name}": s["test_edges"] for name, s in m["scorers"].items()})
    if baseline is not None:
        rows["test, post-hoc corr"] = baseline
    keys = ("auc", "mrr", "filtered_mrr", "top@1", "top@3", "top@5", "n_positives")
    print(f"\nbest epoch {m['best_epoch']} of {len(m['history'])}  (device {m['device']})")
    print(f"edge table scored by {chosen!r}; every scorer of the run on the test edges:")
    print(f"{'held-out edges':<28}" + "".join(f"{k:>13}" for k in keys))
    for name, r in rows.items():
        cells = "".join(f"{_fmt(r.get(k)) if k != 'n_positives' else r[k]:>13}" for k in keys)
        print(f"{name:<28}{cells}")
    t = m["test"]
    print(
        f"\ntest loss {t['loss']:.4f}   test r2 {t['r2']:.3f}   "
        f"total {seconds:.1f} s   ({m['timing']['seconds_per_epoch']:.2f} s/epoch)"
    )
    _print_top_edges(run)
    _print_discoveries(run)


def _truth(run: BenchmarkRun, pair: tuple[str, str]) -> str:
    if pair in set(run.test_edges):
        return "held-out (test)"
    return "held-out (val)" if pair in set(run.val_edges) else ""


def _count(v: float) -> str:
    return "-" if np.isnan(v) else str(int(v))


def _print_top_edges(run: BenchmarkRun, k: int = 10) -> None:
    edges = run.result.edges
    cand = edges.loc[~edges.has_edge.to_numpy()].head(k)
    print(f"\ntop {k} candidate edges (not in the training graph):")
    print(
        f"{'rank':>4}  {'src':>6} -> {'dst':<6} {'score':>8} {'q_value':>9} "
        f"{'confirm_q':>10} {'effect':>9} {'equiv':>5}  truth"
    )
    for rank, r in enumerate(cand.itertuples(index=False), 1):
        pair = (str(r.src_func), str(r.dst_func))
        print(
            f"{rank:>4}  {pair[0]:>6} -> {pair[1]:<6} {r.score:8.4f} {r.q_value:9.2e} "
            f"{r.confirm_q_value:10.2e} {r.effect:9.2e} {_count(r.equivalents):>5}  "
            f"{_truth(run, pair)}"
        )


def _print_discoveries(run: BenchmarkRun, alpha: float = 0.1) -> None:
    """How many pairs each q column calls discoveries, and how many are held-out edges;
    for the confirmation also how many of its "this edge or an equivalent" claims hold."""
    cand = run.result.edges.loc[lambda e: ~e.has_edge.to_numpy()]
    held = set(run.val_edges) | set(run.test_edges)
    print(f"\ndiscoveries at q < {alpha} among candidates ({len(held)} edges held out):")
    for col in ("q_value", "confirm_q_value"):
        hit = cand.loc[cand[col].to_numpy(float) < alpha]
        true = sum(
            (str(a), str(b)) in held for a, b in zip(hit.src_func, hit.dst_func, strict=True)
        )
        print(f"  {col:<16} {len(hit):>5} pairs, {true:>3} held out, {len(hit) - true:>4} not")
    if len(hit):  # the confirmation's discoveries, against the graph the model trained on
        covered = int(set_covers(run.bench.partial, hit[["src_idx", "dst_idx"]], held).sum())
        cover = f"{covered:>3} cover a held-out edge, {len(hit) - covered} not"
        print(f"  {'  or equivalent':<16} {len(hit):>5} pairs, {cover}")
    c = run.result.metrics["confirm"]
    if c:
        print(
            f"confirmed {c['n_confirmed']} candidates on the model refined {c['refine_epochs']} "
            f"more epochs (test loss {run.result.metrics['test']['loss']:.4f} -> "
            f"{c['base_test_loss']:.4f}), each tested for an effect > {c['effect_margin']:.2e} "
            f"(min_effect {c['min_effect']:g} over the outputs), {c['seconds']:.1f} s"
        )


def write_outputs(run: BenchmarkRun, out: Path) -> list[Path]:
    """Edge table (CSV), metrics (JSON) and a PNG of validation AUC per epoch + test ROC."""
    out.mkdir(parents=True, exist_ok=True)
    res = run.result
    edges_path, metrics_path, png_path = out / "edges.csv", out / "metrics.json", out / "demo.png"
    res.edges.to_csv(edges_path, index=False)
    metrics_path.write_text(json.dumps(res.metrics, indent=2, default=float))
    _plot(run, png_path)
    return [edges_path, metrics_path, png_path]


def _plot(run: BenchmarkRun, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    hist = run.result.history
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot([h["epoch"] for h in hist], [h["val_auc"] for h in hist], marker="o", ms=3)
    ax1.axvline(run.result.best_epoch, color="grey", ls="--", lw=1, label="best epoch")
    ax1.set(
        xlabel="epoch", ylabel="validation AUC (magnitude W)", title="held-out validation edges"
    )
    ax1.legend()
    table = edge_labels(run.result.edges, run.test_edges, run.val_edges)
    fpr, tpr = roc_curve(table.score.to_numpy(), table.label.to_numpy())
    auc = run.result.metrics["test"]["edges"]["auc"]
    ax2.plot(fpr, tpr, label=f"{run.result.metrics['scorer']} (AUC {auc:.3f})")
    ax2.plot([0, 1], [0, 1], color="grey", ls=":", lw=1)
    ax2.set(
        xlabel="false positive rate", ylabel="true positive rate", title="test edges vs non-edges"
    )
    ax2.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
