"""Per-node activation and gradient magnitudes (SPEC section 3), shared by the online
regressor and the post-hoc inferer."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from gsnn_edges.graph import GraphData
from gsnn_edges.inference.choices import AGGREGATORS

LossFn = Callable[[Tensor, Tensor], Tensor]


def check_probe_model(model: nn.Module, data: GraphData) -> None:
    """A model the regressor or the inferer can read magnitudes from, matching ``data``.

    Raises:
        ValueError: ``checkpoint=True`` (recomputation loses the cached activations),
            fewer than 2 blocks (no adjacent pair), or a function-node count that differs
            from ``data``'s.
    """
    if getattr(model, "checkpoint", False):
        raise ValueError(
            "model has checkpoint=True: gradient checkpointing recomputes blocks and "
            "loses the cached activations; build the GSNN with checkpoint=False"
        )
    if len(model.ResBlocks) < 2:
        raise ValueError(f"model needs >= 2 layers for adjacent pairs, got {model.layers}")
    n_data = len(data.node_names_dict["function"])
    if n_data != model.n_function:
        raise ValueError(f"data has {n_data} function nodes but the model has {model.n_function}")


def check_aggregators(aggregators: Iterable[str]) -> tuple[str, ...]:
    aggs = tuple(aggregators)
    if not aggs:
        raise ValueError(f"aggregators must name at least one of {AGGREGATORS}, got []")
    bad = [a for a in aggs if a not in AGGREGATORS]
    if bad:
        raise ValueError(f"unknown aggregator(s) {bad}; choose from {AGGREGATORS}")
    return aggs


def uniform_group_size(channel_groups: Tensor, n_nodes: int) -> int | None:
    """Channels per node when node ``i`` owns channels ``i*c .. (i+1)*c-1``, else None."""
    n_channels = channel_groups.numel()
    if n_nodes == 0 or n_channels % n_nodes:
        return None
    size = n_channels // n_nodes
    expected = torch.arange(n_nodes, device=channel_groups.device).repeat_interleave(size)
    return size if torch.equal(channel_groups, expected) else None


def node_magnitudes(
    a: Tensor,
    channel_groups: Tensor,
    n_nodes: int,
    aggregators: tuple[str, ...],
    *,
    group_size: int | None | str = "detect",
) -> Tensor:
    """Reduce ``|a|`` over each node's channels, for every aggregator at once.

    One vectorized reduction over all nodes: a reshape when every node owns the same
    contiguous channel block, PyG's ``scatter`` otherwise (faster than
    ``Tensor.scatter_reduce``: ``benchmarks/pyg_utils.py``).

    Args:
        a: activations or gradients ``[..., C]`` (any leading dims).
        channel_groups: node index of every channel ``[C]``.
        n_nodes: number of function nodes ``N``.
        aggregators: reductions to apply: ``sum`` (L1), ``max``, ``mean``, ``l2``.
        group_size: :func:`uniform_group_size` of ``channel_groups`` when the caller has
            it cached (the check costs an ``arange`` and a compare, a sync on CUDA).

    Returns:
        ``[K, ..., N]`` with ``K = len(aggregators)``.
    """
    size = uniform_group_size(channel_groups, n_nodes) if group_size == "detect" else group_size
    if size is not None:
        g = a.abs().reshape(*a.shape[:-1], n_nodes, size)
        return torch.stack([reduce_channels(g, k, -1) for k in aggregators])
    return _segment_magnitudes(a.abs(), channel_groups, n_nodes, aggregators)


def reduce_channels(g: Tensor, agg: str, dim: int) -> Tensor:
    """Reduce non-negative magnitudes ``g`` over its channel axis ``dim`` with ``agg``."""
    if agg == "sum":
        return g.sum(dim)
    if agg == "max":
        return g.amax(dim)
    if agg == "mean":
        return g.mean(dim)
    return g.square().sum(dim).sqrt()


def _segment_magnitudes(
    a: Tensor, channel_groups: Tensor, n_nodes: int, aggregators: tuple[str, ...]
) -> Tensor:
    # imported here: torch_geometric adds ~1.5 s to an import, and GSNN models built by
    # this library always take the reshape path
    from torch_geometric.utils import scatter

    out = []
    for agg in aggregators:  # a loop over <= 4 aggregators, not over nodes
        src = a.square() if agg == "l2" else a
        reduce = "sum" if agg == "l2" else agg
        res = scatter(src, channel_groups, dim=-1, dim_size=n_nodes, reduce=reduce)
        out.append(res.sqrt() if agg == "l2" else res)
    return torch.stack(out)


def block_tensors(model: nn.Module, use_pre_norm: bool) -> list[Tensor | None]:
    """The cached per-block tensors magnitudes are taken from (``[B, C]`` each)."""
    attr = "_last_pre_norm_activation" if use_pre_norm else "_last_activation"
    return [getattr(block, attr) for block in model.ResBlocks]


def probe_batches(
    model: nn.Module, loader: Iterable, loss_fn: LossFn, device: torch.device, use_pre_norm: bool
) -> Iterator[tuple[list[Tensor], list[Tensor]]]:
    """One forward/backward pass per ``(x, y, ...)`` batch of ``loader`` in
    :func:`probe_mode` (eval mode, cached activations released afterwards).

    Gradients are taken with :func:`torch.autograd.grad` with respect to the cached ``z``
    only (the parameters' ``.grad`` stay untouched) and multiplied by the batch size: they
    are per-sample gradients when ``loss_fn`` averages over the batch, so batches of
    different sizes pool consistently.

    Yields:
        Per batch, the detached source activations of blocks ``0..L-2`` (pre-norm ``z`` or,
        with ``use_pre_norm=False``, after the nonlinearity) and ``dL/dz`` of blocks
        ``1..L-1``, ``[B, C]`` each.
    """
    with probe_mode(model):
        for batch in loader:
            x = batch[0].to(device).detach().requires_grad_(True)  # keeps z in the graph
            with torch.enable_grad():
                loss = loss_fn(model(x), batch[1].to(device))
                grads = torch.autograd.grad(loss, block_tensors(model, use_pre_norm=True)[1:])
            acts = [t.detach() for t in block_tensors(model, use_pre_norm)[:-1]]
            yield acts, [g * x.shape[0] for g in grads]


@contextmanager
def probe_mode(model: nn.Module) -> Iterator[None]:
    """Eval mode with cached activations; restores every module's mode and every block's
    ``_store_activations`` flag, and releases the cached activations, also on error."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [block._store_activations for block in model.ResBlocks]
    try:
        model.eval()
        model._store_activations = True
        yield
    finally:
        for module, mode in modes:
            module.training = mode
        for block, flag in zip(model.ResBlocks, flags, strict=True):
            block._store_activations = flag
            block.clear_activations()


def node_sums(
    a: Tensor,
    channel_groups: Tensor,
    n_nodes: int,
    group_size: int | None,
    channels_first: bool = False,
) -> Tensor:
    """Signed sum of ``a`` over each node's channels (a reshape for uniform groups, a
    segment sum otherwise).

    Shapes:
        a: ``[..., C]`` -> ``[..., N]``; with ``channels_first``, ``[C, ...]`` -> ``[N, ...]``
        (the layout the GSNN's blocks compute in).
    """
    dim = 0 if channels_first else a.dim() - 1
    if group_size is not None:
        return a.unflatten(dim, (n_nodes, group_size)).sum(dim + 1)
    # index_add_ rather than PyG's scatter, which is as fast within noise (4% slower:
    # benchmarks/pyg_utils.py)
    shape = list(a.shape)
    shape[dim] = n_nodes
    return a.new_zeros(shape).index_add_(dim, channel_groups, a)
