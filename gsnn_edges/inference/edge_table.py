"""Score-matrix -> scored-edge DataFrame, shared by the regressor and the inferer."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from gsnn_edges.graph import FF, GraphData
from gsnn_edges.metrics import bh_qvalues, named_pair_metrics

__all__ = ["edge_table", "function_edge_mask"]


def function_edge_mask(data: GraphData, n_function: int) -> np.ndarray:
    """Bool ``[N, N]``: ``True`` where ``function_i -> function_j`` is in the graph."""
    mask = np.zeros((n_function, n_function), dtype=bool)
    ei = data.edge_index_dict.get(FF)
    if ei is not None and len(ei[0]):
        ei = np.asarray(ei)
        mask[ei[0], ei[1]] = True
    return mask


def edge_table(
    scores: np.ndarray,
    names: Sequence[str],
    in_graph: np.ndarray,
    p_values: np.ndarray,
    *,
    exclude_self: bool = True,
    score_col: str = "score",
    columns: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """All scored pairs as a DataFrame sorted by score, descending; ``columns`` adds
    more ``[N, N]`` per-pair values (e.g. a replicated job's ``stability``).

    Node names are pandas categoricals (codes into ``names``), so the table costs a few
    bytes per row even at millions of pairs.

    Shapes:
        scores, in_graph, p_values: ``[N, N]`` -> ``N*(N-1)`` rows (``N*N`` with self).
    """
    n = scores.shape[0]
    flat = scores.reshape(-1)
    keep = np.ones(n * n, dtype=bool)
    if exclude_self:
        keep[:: n + 1] = False
    idx = np.flatnonzero(keep)
    order = idx[np.argsort(-flat[idx])]
    src, dst = np.divmod(order, n)
    p = p_values.reshape(-1)[order]
    categories = pd.Index(list(names))
    extra = {k: np.asarray(v).reshape(-1)[order] for k, v in (columns or {}).items()}
    return pd.DataFrame(
        {
            "src_func": pd.Categorical.from_codes(src, categories=categories),
            "dst_func": pd.Categorical.from_codes(dst, categories=categories),
            "src_idx": src,
            "dst_idx": dst,
            score_col: flat[order],
            "has_edge": in_graph.reshape(-1)[order],
            "p_value": p,
            "q_value": bh_qvalues(p),
            **extra,
        }
    )


class HeldOutPairEvaluation:
    """``evaluate_against`` for a scorer with ``score_matrix()`` (``[N, N]``, higher =
    more likely an edge), ``in_graph`` (bool ``[N, N]``) and the function-node ``names``."""

    def evaluate_against(
        self,
        positive_edges: Iterable[Sequence[str]],
        *,
        top_k: Sequence[int] = (1, 3, 5),
        exclude: Iterable[Sequence[str]] | None = None,
    ) -> dict[str, float]:
        """AUC / MRR / top@k of held-out ``(src, dst)`` function-node name pairs
        (:func:`gsnn_edges.metrics.named_pair_metrics`): pairs already in the graph are not
        negatives, ``exclude`` pairs (e.g. the other held-out split) are left out."""
        scores = np.asarray(self.score_matrix().detach().cpu())
        return named_pair_metrics(
            scores, np.asarray(self.in_graph), self.names, positive_edges,
            exclude=exclude, top_k=top_k,
        )  # fmt: skip
