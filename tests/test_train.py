import dataclasses
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from gsnn_edges.ensemble import combine_replicas, replica_seed
from gsnn_edges.experiment import fit_posthoc, posthoc_baseline, run_benchmark
from gsnn_edges.inference.confirm import confirm_edges, equivalent_sources
from gsnn_edges.inference.regressor import LR_FLOOR, MagnitudeEdgeRegressor, regressor_lr_schedule
from gsnn_edges.metrics import bh_qvalues, edge_table_metrics
from gsnn_edges.nn.gsnn import GSNN
from gsnn_edges.spec import SpecValidationError, TrainSpec
from gsnn_edges.train import (
    RunSetup,
    TrainingCancelled,
    confirm_candidates,
    refine_for_confirmation,
    train_joint,
    train_replica,
)

import references


def _small_spec(**training) -> TrainSpec:
    spec = TrainSpec.from_dict(
        {
            "model": {"channels": 4, "layers": 4, "dropout": 0.0},
            "regressor": {"lr": 1e-2, "dropout": 0.0},
            "training": {"epochs": 3, "lr": 1e-3, "batch_size": 64, **training},
        }
    )
    return spec


@pytest.fixture(scope="module")
def frame(benchmarks):
    """600 samples simulated on the full graph of the default ``bench`` (width 6)."""
    return benchmarks.frame(6, 600, truth="full")


def test_train_joint_is_deterministic_for_a_seed(bench, frame):
    a = train_joint(bench.partial, frame, _small_spec(seed=3))
    b = train_joint(bench.partial, frame, _small_spec(seed=3))
    c = train_joint(bench.partial, frame, _small_spec(seed=4))
    assert np.array_equal(a.weights, b.weights)
    assert a.history[-1]["train_loss"] == b.history[-1]["train_loss"]
    assert not np.array_equal(a.weights, c.weights)


def test_train_joint_history_callbacks_and_last_epoch_without_validation(bench, frame):
    seen = []
    res = train_joint(bench.partial, frame, _small_spec(), on_epoch=seen.append)
    assert [(r["epoch"], r["stage"]) for r in seen] == [
        (1, "training"), (2, "training"), (3, "training"), (3, "scoring")
    ]  # fmt: skip
    assert res.best_epoch == 3 and res.metrics["validation"] is None
    assert res.metrics["test"]["r2"] is not None and np.isfinite(res.metrics["test"]["loss"])
    assert res.device == "cpu" and res.weights.shape == (12, 12)
    n = bench.partial.n_function
    assert len(res.edges) == n * (n - 1)
    assert set(res.model_state) and "W" in res.regressor_state


def test_train_joint_selects_best_validation_epoch(bench, frame):
    spec = _small_spec(epochs=4)
    spec.validation.edges = bench.held_out[:3]
    res = train_joint(bench.partial, frame, spec)
    aucs = [h["val_auc"] for h in res.history]  # the magnitude regressor selects
    assert res.best_epoch == int(np.argmax(aucs)) + 1
    magnitude = res.metrics["scorers"]["magnitude"]
    assert magnitude["validation"]["auc"] == pytest.approx(max(aucs))
    # reported validation metrics are those of the returned (restored) regressor
    assert res.regressor.evaluate_against(spec.validation.edges) == magnitude["validation"]
    assert res.history[-1]["best_epoch"] == res.best_epoch


@pytest.mark.parametrize("scorer", ["hybrid", "score_test", "observed_baseline", "magnitude"])
def test_train_joint_edge_table_is_the_chosen_scorers(bench, frame, scorer):
    """The stored table ranks by the chosen scorer, and the headline metrics are its own."""
    spec = _small_spec(epochs=2)
    spec.regressor.scorer = scorer
    spec.validation.edges = bench.held_out[:3]
    res = train_joint(bench.partial, frame, spec, test_edges=bench.held_out[3:])
    m = res.metrics
    assert m["scorer"] == scorer and set(m["scorers"]) == {
        "hybrid",
        "score_test",
        "observed_baseline",
        "magnitude",
    }
    assert m["validation"] == m["scorers"][scorer]["validation"]
    assert m["test"]["edges"] == m["scorers"][scorer]["test_edges"]
    _, from_table = edge_table_metrics(res.edges, bench.held_out[:3], exclude=bench.held_out[3:])
    assert from_table == pytest.approx(m["validation"])
    assert m["score_test"] == {"rows": 480, "epoch": res.best_epoch, "samples": "training"}
    n = bench.partial.n_function
    assert len(res.edges) == n * (n - 1)
    s = res.edges["score"].to_numpy()
    assert (np.diff(s[np.isfinite(s)]) <= 0).all() and np.isfinite(res.edges["q_value"]).any()
    if scorer == "magnitude":
        W = np.abs(res.weights)[res.edges.src_idx, res.edges.dst_idx]
        np.testing.assert_allclose(res.edges["score"], W, rtol=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_confirm_candidates_pass_over_a_pair_whose_reverse_ranks_above(seed):
    """A scored table with graph edges and unscored pairs mixed in, against a loop over
    its rows (references): a candidate whose reverse scores higher is passed over."""
    rng = np.random.default_rng(seed)
    n = 9
    src, dst = np.nonzero(~np.eye(n, dtype=bool))
    edges = pd.DataFrame({"src_idx": src, "dst_idx": dst, "score": rng.random(src.size)}).assign(
        has_edge=rng.random(src.size) < 0.2
    )
    edges.loc[rng.random(src.size) < 0.1, "score"] = np.nan
    edges = edges.sort_values("score", ascending=False, na_position="last")
    cand = edges.loc[~edges.has_edge & edges.score.notna()]
    ranked = list(zip(cand.src_idx, cand.dst_idx, strict=True))
    spec = TrainSpec()
    for top in (5, 500):
        spec.confirm.top = top
        got = confirm_candidates(SimpleNamespace(spec=spec), edges)
        np.testing.assert_array_equal(got, np.array(references.confirmed_pairs(ranked, top)))
    assert len(references.confirmed_pairs(ranked, 500)) < len(ranked)  # some passed over


def test_train_joint_confirms_on_a_graph_with_a_feedback_loop(bench, frame):
    """The confirmation's equivalent sources walk the graph: a loop (an edge's reverse
    added) used to fail the whole job after training, where topological order ends."""
    a, b = bench.partial.edge_names("function_function")[0]
    graph = bench.partial.with_function_edges([(b, a)])
    spec = _small_spec(epochs=1)
    spec.confirm.top = 5
    res = train_joint(graph, frame, spec)
    conf = res.edges.loc[res.edges.confirmed]
    assert len(conf) == 5 and conf.confirm_p_value.between(0, 1).all()
    assert np.isfinite(conf.equivalents).all()


def test_train_joint_confirms_the_tables_top_candidates(bench, frame):
    spec = _small_spec(epochs=2)
    spec.confirm.top = 7
    res = train_joint(bench.partial, frame, spec)
    edges = res.edges
    cand = edges.loc[~edges.has_edge]
    # the 7 best candidates less reverses of better ones (references.confirmed_pairs)
    want = references.confirmed_pairs(zip(cand.src_idx, cand.dst_idx, strict=True), 7)
    taken = cand.set_index(["src_idx", "dst_idx"]).index.isin(want)
    assert (cand.confirmed.to_numpy() == taken).all() and int(edges.confirmed.sum()) == 7
    conf, rest = cand.loc[taken], cand.loc[~taken]
    np.testing.assert_allclose(conf.confirm_q_value, bh_qvalues(conf.confirm_p_value.to_numpy()))
    assert rest[["effect", "confirm_p_value", "confirm_q_value"]].isna().all().all()
    m = res.metrics["confirm"]
    assert m["n_confirmed"] == 7 and m["heldout_rows"] == 120 and m["train_rows"] == 480
    # equivalents: counted in the graph the model trained on, named for the discoveries
    eq = equivalent_sources(bench.partial, conf[["src_idx", "dst_idx"]].to_numpy())
    np.testing.assert_array_equal(conf.equivalents, eq.sum(1))
    assert rest.equivalents.isna().all()
    names = np.array(res.node_names)
    want = [
        {"src": r.src_func, "dst": r.dst_func, "n": int(n), "sources": names[row].tolist()}
        for r, n, row in zip(conf.itertuples(), eq.sum(1), eq, strict=True)
        if r.confirm_q_value < 0.1 and n > 0
    ]
    assert want and m["equivalents"] == want  # this seed has discoveries with equivalents
    assert train_joint(bench.partial, frame, _small_spec(epochs=1)).metrics["confirm"] is None
    # the candidates were fitted on the refined model, not on the trained one
    setup = RunSetup.prepare(bench.partial, frame, spec)
    base = refine_for_confirmation(setup, res.model)
    pairs = conf[["src_idx", "dst_idx"]].to_numpy()
    args = (setup.training_batches(), setup.split.x_test, setup.split.y_test)
    again = confirm_edges(base, setup.graph, pairs, *args, min_effect=spec.confirm.min_effect)
    np.testing.assert_allclose(conf.confirm_p_value, again.p_values, rtol=1e-6)
    assert m["min_effect"] == spec.confirm.min_effect
    assert m["effect_margin"] == pytest.approx(spec.confirm.min_effect / bench.partial.n_output)
    unrefined = confirm_edges(
        res.model, setup.graph, pairs, *args, min_effect=spec.confirm.min_effect
    )
    assert not np.allclose(conf.confirm_p_value, unrefined.p_values, rtol=1e-3)
    assert m["refine_epochs"] == spec.confirm.refine_epochs > 0
    assert m["base_test_loss"] == pytest.approx(
        float(torch.nn.functional.mse_loss(base(setup.split.x_test).detach(), setup.split.y_test))
    )
    assert m["base_test_loss"] < res.metrics["test"]["loss"]  # 2 epochs left it underfitted
    assert 0 < m["refine_seconds"] <= m["seconds"]


def test_refine_for_confirmation_trains_a_copy_without_dropout_on_training_rows(bench, frame):
    spec = _small_spec(epochs=1)
    spec.model.dropout, spec.confirm.refine_epochs = 0.5, 4
    setup = RunSetup.prepare(bench.partial, frame, spec)
    res = train_joint(bench.partial, frame, spec)
    before = {k: v.clone() for k, v in res.model.state_dict().items()}
    base = refine_for_confirmation(setup, res.model)
    assert all(torch.equal(v, res.model.state_dict()[k]) for k, v in before.items())
    x, y = setup.split.x_train, setup.split.y_train
    base.train()  # no dropout left to make two passes differ
    assert torch.equal(base(x), base(x))
    mse = lambda m: float(torch.nn.functional.mse_loss(m.eval()(x).detach(), y))
    assert mse(base) < mse(res.model)
    # the held-out rows take no part: other held-out outputs, the same refined model
    zeros = lambda t: torch.zeros_like(t)
    other = dataclasses.replace(
        setup.split, x_test=zeros(setup.split.x_test), y_test=zeros(setup.split.y_test)
    )
    again = refine_for_confirmation(dataclasses.replace(setup, split=other), res.model)
    assert all(torch.equal(v, again.state_dict()[k]) for k, v in base.state_dict().items())
    # 0 epochs: the trained model itself, in eval mode
    spec.confirm.refine_epochs = 0
    same = refine_for_confirmation(RunSetup.prepare(bench.partial, frame, spec), res.model)
    assert not same.training and torch.equal(same(x), res.model.eval()(x))
    with pytest.raises(TrainingCancelled, match="refining epoch 1"):
        spec.confirm.refine_epochs = 2
        refine_for_confirmation(setup, res.model, should_stop=lambda: True)


def test_train_joint_replicas_combine_independent_runs_on_one_split(bench, frame):
    """replicas=3: three runs that differ only in their random numbers, combined by the
    ensemble functions; replica 0 is the one-replica run; the confirmation runs once."""
    spec = _small_spec(epochs=2)
    spec.model.dropout = 0.2
    spec.validation.edges = bench.held_out[:3]
    spec.replicas, spec.confirm.top = 3, 4
    seen = []
    res = train_joint(
        bench.partial, frame, spec, test_edges=bench.held_out[3:], on_epoch=seen.append
    )
    stages = [(r.get("replica"), r["epoch"], r["stage"]) for r in seen]
    per_replica = [(e, "training") for e in (1, 2)] + [(2, "scoring")]
    assert stages == [(r, *s) for r in range(3) for s in per_replica] + [
        (None, 2, "combining"), (None, 2, "confirming")
    ]  # fmt: skip
    setup = RunSetup.prepare(bench.partial, frame, spec, bench.held_out[3:])
    runs = [train_replica(setup, r) for r in range(3)]
    single = spec.model_copy(update={"replicas": 1})
    alone = train_joint(bench.partial, frame, single, test_edges=bench.held_out[3:])
    np.testing.assert_array_equal(runs[0].weights, alone.weights)  # replica 0 = one replica
    assert not np.array_equal(runs[0].weights, runs[1].weights)
    m = res.metrics
    assert [r["seed"] for r in m["replicas"]] == [replica_seed(0, r) for r in range(3)]
    assert [r["test"] for r in m["replicas"]] == [r.metrics["test"] for r in runs]
    assert m["ensemble"] == {"replicas": 3, "combine": "rank", "stability_top_k": 100}
    assert m["test"]["r2"] == pytest.approx(np.mean([r.metrics["test"]["r2"] for r in runs]))
    ens = combine_replicas(
        [r.scores["hybrid"].scores for r in runs],
        [r.scores["hybrid"].p_values for r in runs],
        setup.in_graph(),
    )
    e = res.edges
    i, j = e.src_idx.to_numpy(), e.dst_idx.to_numpy()
    np.testing.assert_allclose(e["score"], ens.scores[i, j])
    np.testing.assert_allclose(e["p_value"], ens.p_values[i, j])
    np.testing.assert_allclose(e["stability"], ens.stability[i, j])
    np.testing.assert_allclose(e["score_se"], ens.score_se[i, j])
    cand = e.loc[~e.has_edge]
    assert cand.stability.between(0, 1).all() and e.loc[e.has_edge].stability.isna().all()
    want = references.confirmed_pairs(zip(cand.src_idx, cand.dst_idx, strict=True), 4)
    assert (
        cand.confirmed.to_numpy() == cand.set_index(["src_idx", "dst_idx"]).index.isin(want)
    ).all()
    assert int(e.confirmed.sum()) == 4
    _, from_table = edge_table_metrics(e, bench.held_out[:3], exclude=bench.held_out[3:])
    assert from_table == pytest.approx(m["validation"])
    np.testing.assert_allclose(res.weights, np.mean([r.weights for r in runs], axis=0))


def test_train_joint_holdout_fraction_hides_graph_edges(bench, frame):
    spec = _small_spec(epochs=2)
    spec.validation.holdout_fraction = 0.25
    res = train_joint(bench.full, frame, spec)
    hidden = [tuple(e) for e in res.metrics["validation_edges"]]
    n_ff = len(bench.full.function_edges())
    assert len(hidden) == round(0.25 * n_ff)
    flagged = res.edges[res.edges.has_edge]
    in_table = set(zip(flagged.src_func.astype(str), flagged.dst_func.astype(str), strict=True))
    assert not in_table & set(hidden)  # hidden edges are absent from the model's graph


def test_train_joint_cancellation_raises_at_epoch_boundary(bench, frame):
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(TrainingCancelled, match="before epoch 3"):
        train_joint(bench.partial, frame, _small_spec(epochs=5), should_stop=stop)


def test_regressor_lr_schedule_follows_the_cosine_formula(bench):
    g = bench.partial
    model = GSNN(g.edge_index_dict, g.node_names_dict, channels=2, layers=3)
    reg = MagnitudeEdgeRegressor(model, g, lr=2e-3)
    assert regressor_lr_schedule(reg, 10, "constant") is None
    bad_kind = r"kind must be one of \('cosine', 'constant'\), got 'linear'"
    with pytest.raises(ValueError, match=bad_kind):
        regressor_lr_schedule(reg, 10, "linear")
    sched = regressor_lr_schedule(reg, 10)
    seen = [reg.optimizer.param_groups[0]["lr"]]
    for _ in range(12):  # past the end the rate stays at the floor
        reg.optimizer.step()
        sched.step()
        seen.append(reg.optimizer.param_groups[0]["lr"])
    k = np.minimum(np.arange(13), 10)
    expected = 2e-3 * (LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + np.cos(np.pi * k / 10)))
    np.testing.assert_allclose(seen, expected, rtol=1e-12)


@pytest.mark.parametrize(("schedule", "final"), [("cosine", LR_FLOOR), ("constant", 1.0)])
def test_train_joint_anneals_the_regressor_lr_over_the_whole_run(bench, frame, schedule, final):
    spec = _small_spec()
    spec.regressor.lr_schedule = schedule
    res = train_joint(bench.partial, frame, spec)
    # 480 training rows / batch 64 = 8 steps per epoch, 3 epochs: the schedule ends exactly
    assert res.regressor.optimizer.param_groups[0]["lr"] == pytest.approx(1e-2 * final)


@pytest.mark.parametrize(
    "patch, match",
    [
        (
            {"model": {"norm": "group"}},
            r"model.norm: Input should be .*'rms' or 'none', got 'group'",
        ),
        (
            {"model": {"layers": 1}},
            r"model.layers: Input should be greater than or equal to 2, got 1",
        ),
        (
            {"training": {"epochs": -1}},
            r"training.epochs: Input should be greater than or equal to 1",
        ),
        ({"regressor": {"aggregators": ["median"]}}, r"regressor.aggregators"),
        (
            {"regressor": {"lr_schedule": "step"}},
            r"regressor.lr_schedule: Input should be 'cosine' or 'constant'",
        ),
        ({"validation": {"edges": [["f0", "f6"]]}}, r"already in the graph"),
        ({"validation": {"edges": [["f0", "zz"]]}}, r"not function nodes"),
        (
            {"validation": {"holdout_fraction": 1.5}},
            r"validation.holdout_fraction: Input should be less than 1",
        ),
        (
            {"validation": {"edges": [["f1", "f7"]], "holdout_fraction": 0.2}},
            "not both",
        ),
        ({"confirm": {"top": 10_000}}, r"confirm.top: Input should be less than or equal to 500"),
        ({"confirm": {"top": 5}, "training": {"test_fraction": 0}}, "test_fraction > 0"),
        (
            {"confirm": {"refine_epochs": -1}},
            "confirm.refine_epochs: Input should be greater than or equal to 0",
        ),
        (
            {"confirm": {"min_effect": -0.001}},
            "confirm.min_effect: Input should be greater than or equal to 0",
        ),
        # bounds the API and the library once disagreed on: the spec has them once
        (
            {"training": {"test_fraction": 0.6}},
            r"training.test_fraction: .*less than or equal to 0.5",
        ),
        ({"training": {"seed": -1}}, r"training.seed: .*greater than or equal to 0"),
        ({"training": {"epochs": 100_001}}, r"training.epochs: .*less than or equal to 100000"),
        ({"training": {"lr": float("nan")}}, r"training.lr: Input should be a finite number"),
        ({"model": {"chanels": 4}}, r"model.chanels: Extra inputs are not permitted"),
        ({"confirm": {"top": 5}, "training": {"test_fraction": 0.001}}, ">= 3 held-out"),
    ],
)
def test_train_joint_rejects_invalid_specs(bench, frame, patch, match):
    with pytest.raises(SpecValidationError, match=match):
        train_joint(bench.partial, frame, TrainSpec.from_dict(patch))


def test_train_joint_rejects_bad_data(bench, frame):
    with pytest.raises(ValueError, match="missing columns"):
        train_joint(bench.partial, frame.drop(columns=["in0"]), _small_spec())
    bad = frame.copy()
    bad.iloc[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train_joint(bench.partial, bad, _small_spec())


def test_train_joint_cuda_request_without_gpu_is_a_clear_error(bench, frame):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present; the CUDA path is exercised by test_train_joint_on_cuda")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        train_joint(bench.partial, frame, _small_spec(device="cuda"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_train_joint_on_cuda_matches_cpu_shapes(bench, frame):
    res = train_joint(bench.partial, frame, _small_spec(device="cuda"))
    assert res.device.startswith("cuda") and res.weights.shape == (12, 12)


RECOVERY_SEEDS = (0, 1, 2)
# (min mean, min single) test AUC per scorer; measured over seeds 0-2: hybrid 0.913 /
# 0.978 / 0.978, score_test 0.742 / 0.882 / 0.962, magnitude 0.674 / 0.832 / 0.887
RECOVERY_MIN_AUC = {"hybrid": (0.93, 0.88), "score_test": (0.82, 0.7), "magnitude": (0.76, 0.6)}


def test_recovery_on_seeded_benchmark_beats_threshold():
    """Every GSNN scorer recovers held-out edges of a width-8 benchmark (16 function nodes,
    10 held out, 5 for validation, 5 for test) far above chance, the default hybrid best."""
    aucs = {name: [] for name in RECOVERY_MIN_AUC}
    for seed in RECOVERY_SEEDS:
        spec = _small_spec(epochs=8, seed=seed)
        scorers = run_benchmark(spec, width=8, n_train=1000).result.metrics["scorers"]
        for name, got in aucs.items():
            got.append(scorers[name]["test_edges"]["auc"])
    for name, (min_mean, min_one) in RECOVERY_MIN_AUC.items():
        assert np.mean(aucs[name]) >= min_mean and min(aucs[name]) >= min_one, (name, aucs)


def test_posthoc_baseline_scores_the_test_edges_without_the_validation_ones():
    run = run_benchmark(_small_spec(epochs=2, seed=0), width=5, n_train=400)
    out = posthoc_baseline(run)
    assert out["n_positives"] == len(run.test_edges)
    inferer = fit_posthoc(run)
    names = run.bench.partial.node_names_dict["function"]
    S = inferer.score_matrix().numpy()
    ref = references.named_metrics(S, inferer.in_graph, names, run.test_edges, run.val_edges)
    assert out["auc"] == pytest.approx(ref["auc"]) and out["mrr"] == pytest.approx(ref["mrr"])
