"""The joint training loop: GSNN + online MagnitudeEdgeRegressor (used by CLI and worker).

One call of :func:`train_joint` splits the samples, standardises them with training
statistics, trains the GSNN with AdamW and, in the same steps, the edge regressor (the
seed's call order), scores validation edges every epoch, keeps the best checkpoint,
and reports test loss/r2 and the scored-edge table.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from gsnn_edges import metrics as edge_metrics
from gsnn_edges.device import resolve_device
from gsnn_edges.graph import Edge, GraphInput, GSNNGraph, as_graph, split_edges
from gsnn_edges.inference.confirm import EdgeConfirmation, confirm_edges, with_confirmation
from gsnn_edges.inference.edge_table import edge_table
from gsnn_edges.inference.observed_baseline import observed_baseline
from gsnn_edges.inference.regressor import MagnitudeEdgeRegressor, regressor_lr_schedule
from gsnn_edges.inference.score_test import ScoreTestScorer
from gsnn_edges.inference.scorers import BASELINE_DEGREE, PairScores, hybrid_scores
from gsnn_edges.nn.gsnn import GSNN
from gsnn_edges.spec import TrainSpec
from gsnn_edges.train_validation import (
    check_confirm_rows,
    frame_arrays,
    validate_spec,
)

__all__ = ["TrainResult", "TrainingCancelled", "scale", "train_joint"]


class TrainingCancelled(Exception):
    """``should_stop()`` returned True at an epoch boundary."""


@dataclass
class TrainResult:
    """Everything a run produces. ``weights[i, j]`` scores ``node_names[i] -> node_names[j]``."""

    node_names: list[str]
    weights: np.ndarray
    edges: pd.DataFrame
    metrics: dict
    history: list[dict]
    best_epoch: int
    device: str
    model_state: dict
    regressor_state: dict
    scaler: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    model: GSNN | None = field(default=None, repr=False)
    regressor: MagnitudeEdgeRegressor | None = field(default=None, repr=False)


@dataclass
class _Split:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    scaler: dict[str, np.ndarray]


def _split_data(
    X: np.ndarray, Y: np.ndarray, test_fraction: float, seed: int, device: torch.device
) -> _Split:
    """Seeded train/test split; z-score both sides with training statistics."""
    n = X.shape[0]
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(test_fraction * n)) if n > 1 else 0
    test, train = perm[:n_test], perm[n_test:]
    scaler = {
        "x_mean": X[train].mean(0),
        "x_std": X[train].std(0) + 1e-8,
        "y_mean": Y[train].mean(0),
        "y_std": Y[train].std(0) + 1e-8,
    }
    x, y = scale(scaler, X, Y, device)
    return _Split(x[train], y[train], x[test], y[test], scaler)


def scale(
    scaler: dict, X: np.ndarray, Y: np.ndarray, device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, ...]:
    """Apply a run's z-scoring (``TrainResult.scaler``) to raw inputs and outputs."""
    t = lambda a: torch.as_tensor(a, dtype=torch.float32, device=device)
    return t((X - scaler["x_mean"]) / scaler["x_std"]), t((Y - scaler["y_mean"]) / scaler["y_std"])


def _resolve_validation(graph: GSNNGraph, spec: TrainSpec) -> tuple[GSNNGraph, list[Edge]]:
    """The graph the model trains on and the positives that select the checkpoint."""
    v = spec.validation
    if v.holdout_fraction is not None:
        ff = sorted(graph.function_edges())
        hidden, _ = split_edges(ff, v.holdout_fraction, seed=spec.training.seed)
        return graph.without_function_edges(hidden), list(hidden)
    return graph, [tuple(e) for e in (v.edges or [])]


def _run_epoch(
    model: GSNN,
    reg: MagnitudeEdgeRegressor,
    opt: torch.optim.Optimizer,
    split: _Split,
    batch_size: int,
    gen: torch.Generator,
    reg_schedule: torch.optim.lr_scheduler.LRScheduler | None = None,
) -> tuple[float, float, float]:
    """One pass over the training set in the seed's call order; returns mean losses."""
    model.train()
    reg.train()
    n = split.x_train.shape[0]
    order = torch.randperm(n, generator=gen).to(split.x_train.device)
    total = aux_total = aux_seconds = 0.0
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        x, y = split.x_train[idx], split.y_train[idx]
        opt.zero_grad(set_to_none=True)
        reg.pre_forward()
        loss = torch.nn.functional.mse_loss(model(x), y)
        reg.arm_retained_grads()
        loss.backward()
        t0 = time.perf_counter()
        aux = reg.aux_step()
        aux_seconds += time.perf_counter() - t0
        if reg_schedule is not None:
            reg_schedule.step()
        opt.step()
        total += float(loss.detach()) * len(idx)
        aux_total += aux["aux_loss"] * len(idx)
    return total / n, aux_total / n, aux_seconds


@torch.no_grad()
def _test_metrics(model: GSNN, split: _Split) -> dict[str, float | None]:
    """Test MSE and r2 (mean over outputs of ``1 - SS_res / SS_tot``)."""
    if split.x_test.shape[0] == 0:
        return {"loss": None, "r2": None}
    model.eval()
    pred = model(split.x_test)
    loss = float(torch.nn.functional.mse_loss(pred, split.y_test))
    ss_res = (pred - split.y_test).square().sum(0)
    ss_tot = (split.y_test - split.y_test.mean(0)).square().sum(0).clamp(min=1e-12)
    return {"loss": loss, "r2": float((1 - ss_res / ss_tot).mean())}


def _build(
    graph: GSNNGraph, spec: TrainSpec, device: torch.device
) -> tuple[GSNN, MagnitudeEdgeRegressor]:
    m, r = spec.model, spec.regressor
    model = GSNN(
        graph.edge_index_dict,
        graph.node_names_dict,
        channels=m.channels,
        layers=m.layers,
        dropout=m.dropout,
        share_layers=m.share_layers,
        add_function_self_edges=m.add_function_self_edges,
        norm=m.norm,
        node_mlp=m.node_mlp,
    ).to(device)
    reg = MagnitudeEdgeRegressor(
        model,
        graph,
        aggregators=r.aggregators,
        lr=r.lr,
        weight_decay=r.weight_decay,
        ridge=r.ridge,
        score_mode=r.score_mode,
        dropout=r.dropout,
    )
    return model, reg


def train_joint(
    graph: GraphInput,
    data: pd.DataFrame,
    spec: TrainSpec | None = None,
    *,
    test_edges: Iterable[Edge] | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    progress: bool = False,
) -> TrainResult:
    """Train a GSNN on ``graph`` and, jointly, the edge regressor.

    Args:
        graph: :class:`GSNNGraph` or anything :func:`as_graph` accepts.
        data: one column per input and output node, one row per sample.
        spec: hyperparameters (defaults: :class:`TrainSpec`).
        test_edges: optional held-out edges scored only for reporting (never for
            selection); each split is excluded from the other's negatives.
        on_epoch: called after every epoch with the progress record.
        should_stop: polled at every epoch boundary; True raises TrainingCancelled.
        progress: show a tqdm progress bar.

    Returns:
        :class:`TrainResult` with ``W``, the edge table and metrics of the best epoch
        (by validation AUC; the last epoch when there is no validation set).
    """
    spec = spec or TrainSpec()
    graph = as_graph(graph)
    validate_spec(graph, spec)
    X, Y = frame_arrays(graph, data)
    t = spec.training
    device = resolve_device(t.device)
    torch.manual_seed(t.seed)
    train_graph, val_edges = _resolve_validation(graph, spec)
    test_edges = [tuple(e) for e in (test_edges or [])]
    split = _split_data(X, Y, t.test_fraction, t.seed, device)
    check_confirm_rows(spec, split.x_test.shape[0])
    model, reg = _build(train_graph, spec, device)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr)
    gen = torch.Generator().manual_seed(t.seed)
    loop = _EpochLoop(
        model, reg, opt, split, spec, train_graph, val_edges, test_edges, on_epoch, should_stop
    )
    history = loop.run(gen, progress)
    return loop.result(history, device)


class _EpochLoop:
    """Epoch bookkeeping: validation, best checkpoint, callbacks, final metrics."""

    def __init__(
        self,
        model: GSNN,
        reg: MagnitudeEdgeRegressor,
        opt: torch.optim.Optimizer,
        split: _Split,
        spec: TrainSpec,
        graph: GSNNGraph,
        val_edges: list[Edge],
        test_edges: list[Edge],
        on_epoch: Callable[[dict], None] | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        self.model, self.reg, self.opt, self.split, self.spec = model, reg, opt, split, spec
        self.graph = graph
        self.val_edges, self.test_edges = val_edges, test_edges
        self.on_epoch, self.should_stop = on_epoch, should_stop
        self.best_epoch, self.best_model_state = None, None
        self.last_val = None  # the last epoch's validation metrics, kept to avoid re-scoring
        self.aux_seconds = self.train_seconds = 0.0
        t = spec.training
        steps = t.epochs * math.ceil(split.x_train.shape[0] / t.batch_size)
        self.reg_schedule = regressor_lr_schedule(reg, steps, spec.regressor.lr_schedule)

    def _validate(self) -> dict | None:
        if not self.val_edges:
            return None
        return self.reg.evaluate_against(self.val_edges, exclude=self.test_edges or None)

    def _score_test(self) -> dict | None:
        if not self.test_edges:
            return None
        return self.reg.evaluate_against(self.test_edges, exclude=self.val_edges or None)

    def run(self, gen: torch.Generator, progress: bool) -> list[dict]:
        epochs = self.spec.training.epochs
        bar = _progress_bar(epochs) if progress else None
        history: list[dict] = []
        for epoch in range(1, epochs + 1):
            if self.should_stop and self.should_stop():
                raise TrainingCancelled(f"cancelled before epoch {epoch}")
            t0 = time.perf_counter()
            loss, aux, aux_s = _run_epoch(
                self.model,
                self.reg,
                self.opt,
                self.split,
                self.spec.training.batch_size,
                gen,
                self.reg_schedule,
            )
            seconds = time.perf_counter() - t0
            self.train_seconds += seconds
            self.aux_seconds += aux_s
            val = self.last_val = self._validate()
            if val is not None and self.reg.maybe_save_best(val["auc"]):
                self.best_epoch = epoch
                self.best_model_state = copy.deepcopy(self.model.state_dict())
            record = {
                "epoch": epoch,
                "epochs": epochs,
                "train_loss": loss,
                "aux_loss": aux,
                "val_auc": val and val["auc"],
                "val_mrr": val and val["mrr"],
                "best_epoch": self.best_epoch or (None if val else epoch),
                "seconds": seconds,
            }
            history.append(record)
            if bar is not None:
                bar.set_postfix(loss=f"{loss:.3f}", val_auc=_fmt(record["val_auc"]))
                bar.update()
            if self.on_epoch:
                self.on_epoch(dict(record))
        if bar is not None:
            bar.close()
        return history

    def result(self, history: list[dict], device: torch.device) -> TrainResult:
        model, reg = self.model, self.reg
        last = {"validation": self.last_val, "test_edges": self._score_test()}
        if self.best_epoch is not None and self.best_epoch < len(history):
            reg.load_best()
            model.load_state_dict(self.best_model_state)
        best_epoch = self.best_epoch or len(history)
        t0 = time.perf_counter()
        scorers, score_rows = self._pair_scores()
        scorer_seconds = time.perf_counter() - t0
        name = self.spec.regressor.scorer
        # the restored W scores validation exactly as it did when it was saved
        per_scorer = {k: self._scorer_metrics(v) for k, v in scorers.items()}
        chosen = per_scorer[name]
        metrics = {
            "best_epoch": best_epoch,
            "scorer": name,
            "validation": chosen["validation"],
            "test": {**_test_metrics(model, self.split), "edges": chosen["test_edges"]},
            "scorers": per_scorer,
            "score_test": {"rows": score_rows, "epoch": best_epoch, "samples": "training"},
            "history": history,
            "device": str(device),
            "timing": {
                "train_seconds": self.train_seconds,
                "aux_step_seconds": self.aux_seconds,
                "seconds_per_epoch": self.train_seconds / max(len(history), 1),
                "scorer_seconds": scorer_seconds,
            },
            "validation_edges": [list(e) for e in self.val_edges],
            "last_epoch": last,
        }
        table = scorers[name]
        edges = edge_table(table.scores, reg.node_names, reg.in_graph.cpu().numpy(), table.p_values)
        confirmation, metrics["confirm"] = self._confirm(edges)
        return TrainResult(
            node_names=list(reg.node_names),
            weights=reg.W.detach().cpu().numpy().copy(),
            edges=with_confirmation(edges, confirmation),
            metrics=metrics,
            history=history,
            best_epoch=best_epoch,
            device=str(device),
            model_state=_cpu_state(model),
            regressor_state=_cpu_state(reg),
            scaler=self.split.scaler,
            model=model,
            regressor=reg,
        )

    def _training_batches(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        bs, x, y = self.spec.training.batch_size, self.split.x_train, self.split.y_train
        return [(x[i : i + bs], y[i : i + bs]) for i in range(0, x.shape[0], bs)]

    def _confirm(self, edges: pd.DataFrame) -> tuple[EdgeConfirmation | None, dict | None]:
        """Confirm the table's top ``confirm.top`` scored candidates at the restored
        checkpoint (training rows fit, test rows judge); ``(None, None)`` when off."""
        top = self.spec.confirm.top
        if top == 0:
            return None, None
        t0 = time.perf_counter()
        scored = ~edges["has_edge"].to_numpy(bool) & np.isfinite(edges["score"].to_numpy())
        pairs = edges.loc[scored, ["src_idx", "dst_idx"]].to_numpy()[:top]
        c = confirm_edges(
            self.model,
            self.graph,
            pairs,
            self._training_batches(),
            self.split.x_test,
            self.split.y_test,
        )
        return c, {
            "top": top,
            "n_confirmed": int(c.src.size),
            "discoveries_q_0_1": int((c.q_values < 0.1).sum()),
            "train_rows": c.n_train_rows,
            "heldout_rows": c.n_heldout_rows,
            "seconds": time.perf_counter() - t0,
        }

    def _pair_scores(self) -> tuple[dict[str, PairScores], int]:
        """Every scorer's ``[N, N]`` scores and p-values at the restored checkpoint, and the
        number of training rows the score test used (one eval-mode pass, fixed model)."""
        reg, split = self.reg, self.split
        x, y = split.x_train, split.y_train
        test = ScoreTestScorer(self.model, self.graph).fit(self._training_batches())
        q, q_p = test.statistic_and_pvalues()
        base = observed_baseline(
            self.graph, x.cpu().numpy(), y.cpu().numpy(), degree=BASELINE_DEGREE
        )
        scores = {
            "magnitude": PairScores(reg.score_matrix().cpu().numpy(), reg.p_values()),
            "score_test": PairScores(q, q_p),
            "observed_baseline": PairScores(base.scores, base.p_values),
            "hybrid": hybrid_scores(base, q, q_p, test.n_pairs),
        }
        return scores, test.n_rows

    def _scorer_metrics(self, scores: PairScores) -> dict:
        """Validation and test-edge metrics of one scorer (unscored pairs rank last)."""
        names, in_graph = self.reg.node_names, self.reg.in_graph.cpu().numpy()
        out: dict = {"n_scored": scores.n_scored, "validation": None, "test_edges": None}
        for key, pos, other in (
            ("validation", self.val_edges, self.test_edges),
            ("test_edges", self.test_edges, self.val_edges),
        ):
            if pos:
                out[key] = edge_metrics.named_pair_metrics(
                    scores.scores, in_graph, names, pos, exclude=other
                )
        return out


def _cpu_state(module: torch.nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}"


def _progress_bar(total: int):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="training", unit="epoch")
