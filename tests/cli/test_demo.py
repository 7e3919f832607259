import json

import pandas as pd

from gsnn_edges.cli import main
from gsnn_edges.spec import MIN_EFFECT, REFINE_EPOCHS

import references


def test_demo_cli_writes_table_metrics_and_plot(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--epochs", "2", "--width", "5", "--samples", "300", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "edge table scored by 'hybrid'" in text and "validation, hybrid" in text
    for row in ("hybrid", "score_test", "observed_baseline", "magnitude", "post-hoc corr"):
        assert f"test, {row}" in text, row
    assert "filtered_mrr" in text
    assert "top 10 candidate edges" in text and "confirm_q" in text
    assert "discoveries at q < 0.1" in text and "confirm_q_value" in text
    assert "equiv" in text
    confirmed = pd.read_csv(out / "edges.csv").query("confirm_q_value < 0.1")
    if len(confirmed):  # the set-level count of its discoveries
        assert f"{len(confirmed)} pairs, " in text and "cover a held-out edge" in text
    edges = pd.read_csv(out / "edges.csv")
    assert list(edges.columns[:5]) == ["src_func", "dst_func", "src_idx", "dst_idx", "score"]
    assert len(edges) == 10 * 9  # width 5 -> 10 function nodes, no self pairs
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["history"]) == 2 and "edges" in metrics["test"]
    cand = edges.loc[~edges.has_edge & edges.score.notna()]
    want = references.confirmed_pairs(zip(cand.src_func, cand.dst_func, strict=True), 50)
    confirmed = edges.loc[edges.confirmed]
    assert set(zip(confirmed.src_func, confirmed.dst_func, strict=True)) == set(want)
    assert metrics["confirm"]["n_confirmed"] == len(want)
    base = f"{metrics['test']['loss']:.4f} -> {metrics['confirm']['base_test_loss']:.4f}"
    c = metrics["confirm"]
    assert c["min_effect"] == MIN_EFFECT and c["effect_margin"] == MIN_EFFECT / 5  # 5 outputs
    assert (
        f"candidates on the model refined {REFINE_EPOCHS} more epochs (test loss {base}), "
        f"each tested for an effect > {c['effect_margin']:.2e} (min_effect {MIN_EFFECT:g} "
        "over the outputs)"
    ) in text
    assert (out / "demo.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_without_command_prints_help(capsys):
    assert main([]) == 2
    assert "demo" in capsys.readouterr().out
