"""Hand-written per-node reductions against PyG's ``utils.scatter`` / ``utils.segment``.

The regressor reduces each function node's channels of a ``[B, C]`` activation to
``[B, N]`` (``gsnn_edges.inference.magnitudes``): a reshape when every node owns the same
number of channels, a scatter over the channel axis otherwise. This times that irregular
path as it was (``Tensor.scatter_reduce``, and ``index_add_`` for ``node_sums``) against
PyG's ``scatter`` (same index) and ``segment`` (CSR pointer over the channel axis, which
must come first without torch-scatter; the channel groups are contiguous), for sum and
max, and checks they agree. The result decides which the library uses
(``benchmarks/README.md``, "Implementation choices").

    python benchmarks/pyg_utils.py --sizes 200 2000
"""

from __future__ import annotations

import argparse
import time

import torch
from torch_geometric.utils import scatter, segment

BATCH, REPEATS = 64, 50


def _groups(n_nodes: int, seed: int = 0) -> torch.Tensor:
    """Channel -> node index for nodes owning 4 to 12 contiguous channels."""
    sizes = torch.randint(4, 13, (n_nodes,), generator=torch.Generator().manual_seed(seed))
    return torch.arange(n_nodes).repeat_interleave(sizes)


def _ours(a: torch.Tensor, groups: torch.Tensor, n: int, reduce: str) -> torch.Tensor:
    index = groups.expand_as(a)
    torch_reduce = {"sum": "sum", "max": "amax"}[reduce]
    return a.new_zeros(a.shape[0], n).scatter_reduce(
        1, index, a, reduce=torch_reduce, include_self=False
    )


def _index_add(a: torch.Tensor, groups: torch.Tensor, n: int) -> torch.Tensor:
    return a.new_zeros(a.shape[0], n).index_add_(-1, groups, a)


def _pyg_scatter(a: torch.Tensor, groups: torch.Tensor, n: int, reduce: str) -> torch.Tensor:
    return scatter(a, groups, dim=1, dim_size=n, reduce=reduce)


def _pyg_segment(a: torch.Tensor, ptr: torch.Tensor, reduce: str) -> torch.Tensor:
    # without torch-scatter, segment reduces dim 0 only: the channels go first
    return segment(a.t(), ptr, reduce=reduce).t()


def _time(fn) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(REPEATS):
        fn()
    return (time.perf_counter() - t0) / REPEATS * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2000])
    args = parser.parse_args()
    print(f"torch threads {torch.get_num_threads()}, batch {BATCH}, mean of {REPEATS} calls (ms)")
    print(
        "| function nodes | reduce | scatter_reduce (before) | index_add (before, sums) "
        "| PyG scatter | PyG segment |"
    )
    print("| ---: | --- | ---: | ---: | ---: | ---: |")
    for n in args.sizes:
        groups = _groups(n)
        ptr = torch.cat([torch.zeros(1, dtype=torch.long), torch.bincount(groups).cumsum(0)])
        a = torch.randn(BATCH, groups.numel()).abs()
        for reduce in ("sum", "max"):
            ref = _ours(a, groups, n, reduce)
            torch.testing.assert_close(_pyg_scatter(a, groups, n, reduce), ref)
            torch.testing.assert_close(_pyg_segment(a, ptr, reduce), ref)
            if reduce == "sum":
                torch.testing.assert_close(_index_add(a, groups, n), ref)
            times = (
                _time(lambda: _ours(a, groups, n, reduce)),  # noqa: B023 - timed in the loop
                _time(lambda: _index_add(a, groups, n)) if reduce == "sum" else float("nan"),  # noqa: B023
                _time(lambda: _pyg_scatter(a, groups, n, reduce)),  # noqa: B023
                _time(lambda: _pyg_segment(a, ptr, reduce)),  # noqa: B023
            )
            print(f"| {n:,} | {reduce} | " + " | ".join(f"{t:.3f}" for t in times) + " |")


if __name__ == "__main__":
    main()
