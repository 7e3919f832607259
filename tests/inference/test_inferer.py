import copy

import numpy as np
import pytest
import torch

from gsnn_edges.inference.inferer import MagnitudeEdgeInferer
from gsnn_edges.nn import GSNN
from gsnn_edges.simulate import converging_tier_graph, simulate

import references
from patching import set_existing

CHANNELS, LAYERS, N_SAMPLES = 4, 3, 50
# Recovery sanity test (converging_tier_graph(6), 1500 samples, GSNN channels 4, layers 4,
# norm 'none', 3 epochs AdamW lr 1e-2, batch 64) measured held-out AUC, seeds 0/1/2:
# corr 0.902 / 0.824 / 0.893, partial 0.905 / 0.819 / 0.894 (5 epochs: corr
# 0.902 / 0.835 / 0.890). The untrained model gives 0.812 / 0.762 / 0.706 (corr).
RECOVERY_AUC_MIN = 0.78


@pytest.fixture(scope="module")
def tiny(benchmarks):
    """converging_tier_graph(4): partial graph, a seeded GSNN and 50 simulated samples."""
    bench = benchmarks.graph(4)
    X, Y = simulate(bench.full, N_SAMPLES, seed=0)
    torch.manual_seed(0)
    g = bench.partial
    model = GSNN(g.edge_index_dict, g.node_names_dict, channels=CHANNELS, layers=LAYERS)
    return bench, model, torch.from_numpy(X), torch.from_numpy(Y)


def _loader(X, Y, size=16):
    """Uneven batches (16, 16, 16, 2) so per-sample gradient scaling is exercised."""
    return [(X[s : s + size], Y[s : s + size]) for s in range(0, len(X), size)]


def _reference_magnitudes(model, X, Y, aggregator, use_pre_norm):
    """Magnitudes from one full-batch pass with retain_grad and a per-node Python loop.

    Returns ``feats, targets`` as numpy ``[P, n, N]`` (features from blocks ``0..L-2``,
    per-sample gradient magnitudes from blocks ``1..L-1``).
    """
    model = copy.deepcopy(model).eval()
    set_existing(model, "_store_activations", True)
    loss = torch.nn.functional.mse_loss(model(X), Y)
    zs = [b._last_pre_norm_activation for b in model.ResBlocks]
    for z in zs:
        z.retain_grad()
    loss.backward()
    attr = "_last_pre_norm_activation" if use_pre_norm else "_last_activation"
    acts = [getattr(b, attr).detach().numpy() for b in model.ResBlocks]
    grads = [z.grad.numpy() * len(X) for z in zs]  # per-sample gradients of the mean loss
    reduce = {
        "sum": lambda a: np.abs(a).sum(1),
        "max": lambda a: np.abs(a).max(1),
        "mean": lambda a: np.abs(a).mean(1),
        "l2": lambda a: np.sqrt(np.square(a).sum(1)),
    }[aggregator]
    n = model.n_function
    feats, targets = np.zeros((LAYERS - 1, len(X), n)), np.zeros((LAYERS - 1, len(X), n))
    for p in range(LAYERS - 1):
        for i in range(n):
            ch = slice(i * CHANNELS, (i + 1) * CHANNELS)
            feats[p, :, i] = reduce(acts[p][:, ch].astype(np.float64))
            targets[p, :, i] = np.abs(grads[p + 1][:, ch].astype(np.float64)).sum(1)
    return feats, targets


def _defined(v):
    """Columns that are not constant (constant columns have no defined correlation)."""
    return np.ptp(v, axis=0) > 1e-6 * np.abs(v).max()


def _pearson_ref(feats, targets, layer_agg):
    n = feats.shape[-1]
    per = np.full((len(feats), n, n), np.nan)
    for p, (f, t) in enumerate(zip(feats, targets, strict=True)):
        with np.errstate(invalid="ignore", divide="ignore"):  # constant columns, masked
            r = np.corrcoef(f.T, t.T)[:n, n:]
        ok = _defined(f)[:, None] & _defined(t)[None, :]
        per[p][ok] = r[ok]
    return _combine(per, layer_agg)


def _combine(per, layer_agg):
    ok = ~np.isnan(per)
    if layer_agg == "mean":
        out = np.where(ok, per, 0).sum(0) / np.maximum(ok.sum(0), 1)
    else:
        out = np.where(ok, per, -np.inf).max(0)
    return np.where(ok.any(0), out, 0.0)


def _residual(v, S):
    design = np.column_stack([np.ones(len(v)), S])
    return v - design @ np.linalg.lstsq(design, v, rcond=None)[0]


def _partial_ref(feats, targets, parents):
    n_pairs, _, n = feats.shape
    per = np.full((n_pairs, n, n), np.nan)
    for p in range(n_pairs):
        ok_x, ok_y = _defined(feats[p]), _defined(targets[p])
        for i in range(n):
            for j in range(n):
                if ok_x[i] and ok_y[j]:
                    cols = [s for s in np.flatnonzero(parents[:, j]) if s != i and ok_x[s]]
                    rx = _residual(feats[p][:, i], feats[p][:, cols])
                    ry = _residual(targets[p][:, j], feats[p][:, cols])
                    per[p, i, j] = np.corrcoef(rx, ry)[0, 1]
    return _combine(per, "mean")


@pytest.mark.parametrize(
    ("aggregator", "use_pre_norm", "layer_agg"),
    [("sum", True, "mean"), ("max", True, "max"), ("l2", False, "mean"), ("mean", False, "max")],
)
def test_inferer_corr_matches_numpy_reference(tiny, aggregator, use_pre_norm, layer_agg):
    bench, model, X, Y = tiny
    inf = MagnitudeEdgeInferer(
        model, bench.partial, aggregator=aggregator, use_pre_norm=use_pre_norm, layer_agg=layer_agg
    ).fit(_loader(X, Y))
    feats, targets = _reference_magnitudes(model, X, Y, aggregator, use_pre_norm)
    S = inf.score_matrix()
    assert S.shape == (model.n_function, model.n_function)
    np.testing.assert_allclose(S.numpy(), _pearson_ref(feats, targets, layer_agg), atol=1e-5)
    assert int(inf.moments.n) == N_SAMPLES


def test_inferer_partial_matches_lstsq_reference(tiny):
    bench, model, X, Y = tiny
    inf = MagnitudeEdgeInferer(model, bench.partial, score="partial").fit(_loader(X, Y))
    feats, targets = _reference_magnitudes(model, X, Y, "sum", True)
    parents = inf.in_graph & ~np.eye(model.n_function, dtype=bool)
    np.testing.assert_allclose(
        inf.score_matrix().numpy(), _partial_ref(feats, targets, parents), atol=1e-4
    )


def test_inferer_pvalues_in_unit_interval_and_monotone_in_score(tiny):
    bench, model, X, Y = tiny
    res = MagnitudeEdgeInferer(model, bench.partial).fit(_loader(X, Y)).evaluate()
    p = res["p_value"].to_numpy()
    assert np.all((p >= 0) & (p <= 1))
    assert np.all(np.diff(p) >= -1e-12)  # sorted by corr descending, same df -> p ascending
    q = res["q_value"].to_numpy()
    assert np.all((q >= p - 1e-12) & (q <= 1))


def test_inferer_evaluate_columns_order_and_no_self_pairs(tiny):
    bench, model, X, Y = tiny
    inf = MagnitudeEdgeInferer(model, bench.partial).fit(_loader(X, Y))
    res = inf.evaluate()
    n = model.n_function
    assert list(res.columns) == [
        "src_func",
        "dst_func",
        "src_idx",
        "dst_idx",
        "corr",
        "has_edge",
        "p_value",
        "q_value",
    ]
    assert len(res) == n * (n - 1)
    assert (res["src_idx"] != res["dst_idx"]).all()
    assert res["corr"].is_monotonic_decreasing
    S = inf.score_matrix().numpy()
    np.testing.assert_allclose(res["corr"], S[res["src_idx"], res["dst_idx"]])
    names = bench.partial.node_names_dict["function"]
    assert [names[i] for i in res["src_idx"][:3]] == list(res["src_func"][:3])
    assert int(res["has_edge"].sum()) == len(bench.partial.function_edges())
    assert len(inf.evaluate(exclude_self=False)) == n * n


def test_inferer_evaluate_against_matches_reference_metrics(tiny):
    bench, model, X, Y = tiny
    inf = MagnitudeEdgeInferer(model, bench.partial).fit(_loader(X, Y))
    held, excluded = bench.held_out[1:], bench.held_out[:1]
    out = inf.evaluate_against(held, top_k=(1, 2), exclude=excluded)
    assert {"auc", "mrr", "top@1", "top@2", "filtered_mrr", "n_positives"} <= set(out)
    assert out["n_positives"] == len(held)
    S, names = inf.score_matrix().numpy(), bench.partial.node_names_dict["function"]
    ref = references.named_metrics(S, inf.in_graph, names, held, exclude=excluded)
    assert out["auc"] == pytest.approx(ref["auc"]) and out["mrr"] == pytest.approx(ref["mrr"])
    with pytest.raises(ValueError, match="not function nodes"):
        inf.evaluate_against([("f0", "nope")])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"aggregator": "median"}, "median"),
        ({"score": "spearman"}, "spearman"),
        ({"layer_agg": "sum"}, "'sum'"),
        ({"ridge": -1.0}, "ridge"),
    ],
)
def test_inferer_rejects_invalid_arguments(tiny, kwargs, match):
    bench, model, _, _ = tiny
    with pytest.raises(ValueError, match=match):
        MagnitudeEdgeInferer(model, bench.partial, **kwargs)


def test_inferer_rejects_checkpointed_or_shallow_models(tiny):
    bench, _, _, _ = tiny
    g = bench.partial
    ckpt = GSNN(g.edge_index_dict, g.node_names_dict, channels=2, layers=3, checkpoint=True)
    with pytest.raises(ValueError, match="checkpoint=True"):
        MagnitudeEdgeInferer(ckpt, g)
    shallow = GSNN(g.edge_index_dict, g.node_names_dict, channels=2, layers=1)
    with pytest.raises(ValueError, match="model needs >= 2 layers for adjacent pairs, got 1"):
        MagnitudeEdgeInferer(shallow, g)
    with pytest.raises(ValueError, match="10 function nodes but the model has 8"):
        MagnitudeEdgeInferer(
            GSNN(g.edge_index_dict, g.node_names_dict, channels=2, layers=2),
            converging_tier_graph(5).partial,
        )


def test_inferer_scoring_before_fit_raises(tiny):
    bench, model, _, _ = tiny
    inf = MagnitudeEdgeInferer(model, bench.partial)
    with pytest.raises(RuntimeError, match="fit"):
        inf.score_matrix()
    with pytest.raises(ValueError, match="no batch"):
        inf.fit([])


def test_inferer_fit_restores_model_state_and_leaves_params_untouched(tiny):
    bench, model, X, Y = tiny
    model = copy.deepcopy(model).train()
    set_existing(model.ResBlocks[1], "_store_activations", True)
    model.ResBlocks[2].eval()  # a mixed mode must survive too
    before = {k: v.clone() for k, v in model.state_dict().items()}
    inf = MagnitudeEdgeInferer(model, bench.partial, score="partial").fit(_loader(X, Y))
    assert model.training and not model.ResBlocks[2].training and model.ResBlocks[1].training
    assert [b._store_activations for b in model.ResBlocks] == [False, True, False]
    for block in model.ResBlocks:
        assert block._last_pre_norm_activation is None and block._last_activation is None
    assert all(p.grad is None for p in model.parameters())
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])
    assert "nodes=8" in repr(inf)


def test_inferer_fit_restores_model_state_on_error(tiny):
    bench, model, X, Y = tiny
    model = copy.deepcopy(model).train()

    def bad_loss(yhat, y):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        MagnitudeEdgeInferer(model, bench.partial).fit(_loader(X, Y), loss_fn=bad_loss)
    assert model.training and not model._store_activations
    assert all(b._last_pre_norm_activation is None for b in model.ResBlocks)


def _train(bench, X, Y, seed, epochs=3, lr=1e-2, batch=64):
    torch.manual_seed(seed)
    g = bench.partial
    model = GSNN(g.edge_index_dict, g.node_names_dict, channels=4, layers=4, norm="none")
    opt = torch.optim.AdamW(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=gen)
        for start in range(0, len(X), batch):
            idx = perm[start : start + batch]
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(X[idx]), Y[idx]).backward()
            opt.step()
    return model


def test_inferer_recovers_held_out_edges_on_converging_tier_graph(bench):
    X, Y = (torch.from_numpy(a) for a in simulate(bench.full, 1500, seed=0))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny ops: ~1.5 s on one thread, far slower when oversubscribed
    try:
        model = _train(bench, X, Y, seed=0)
    finally:
        torch.set_num_threads(threads)
    loader = _loader(X, Y, size=256)
    for score in ("corr", "partial"):
        inf = MagnitudeEdgeInferer(model, bench.partial, score=score).fit(loader)
        assert inf.evaluate_against(bench.held_out)["auc"] > RECOVERY_AUC_MIN, score


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_inferer_cuda_matches_cpu(tiny):
    bench, model, X, Y = tiny
    cpu = MagnitudeEdgeInferer(model, bench.partial, score="partial").fit(_loader(X, Y))
    gpu_model = copy.deepcopy(model).cuda()
    gpu = MagnitudeEdgeInferer(gpu_model, bench.partial, score="partial").fit(_loader(X, Y))
    assert gpu.score_matrix().is_cuda
    torch.testing.assert_close(gpu.score_matrix().cpu(), cpu.score_matrix(), atol=1e-4, rtol=0)
