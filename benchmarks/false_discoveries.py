"""What the confirmation's false discoveries are, with edges missing, several seeds.

For each family and seed, one run of the library defaults plus ``confirm.top`` on the
graph without its held-out edges (as ``calibration.py``'s "missing" run). Every
discovery (``confirm_q_value < 0.1``) that is not a held-out edge is put in the first of
these kinds that fits it (``s -> d``: source, target):

- ``feedback``: ``s`` is downstream of ``d`` in the training graph (the edge closes a loop);
- ``reverse``: ``d -> s`` is a held-out edge;
- ``missing_parent_relative``: ``d`` has a held-out parent ``i`` and ``s`` is downstream
  of ``i`` in the full graph (``s`` carries information of the missing parent);
- ``into_missing_parent_target``: ``d`` has a held-out parent, ``s`` is not downstream of it;
- ``other``.

It also counts the confirmed pairs ``i -> j`` whose reverse was confirmed too, and for
those where exactly one direction is a held-out edge, how often the screening score ranks
the held-out direction higher. A loop over discoveries: a diagnostic, not a service
path.

    python benchmarks/false_discoveries.py --families layered_all_obs --seeds 0 1 2 3 4 5 6 7 8 9
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import torch

from gsnn_edges.experiment import run_experiment
from gsnn_edges.graph import function_descendants, pair_indices

from common import FAMILIES, add_patch_argument, base_parser, make_spec, write_json

ALPHA = 0.1
KINDS = (
    "feedback",
    "reverse",
    "missing_parent_relative",
    "into_missing_parent_target",
    "other",
)


def kind_of(src: int, dst: int, held: np.ndarray, below_training, below_full) -> str:
    """The first of :data:`KINDS` that the false discovery ``src -> dst`` fits (function
    indices; ``held``: ``[H, 2]`` held-out edges; ``below_*``:
    :func:`~gsnn_edges.graph.function_descendants` of the training and the full graph)."""
    if below_training[dst, src]:
        return "feedback"
    if ((held[:, 0] == dst) & (held[:, 1] == src)).any():
        return "reverse"
    parents = held[held[:, 1] == dst, 0]
    if below_full[parents, src].any():
        return "missing_parent_relative"
    return "into_missing_parent_target" if parents.size else "other"


def one_seed(family: str, seed: int, top: int, rows: int, patch: dict) -> dict:
    patch = dict(patch)
    patch["confirm"] = {**patch.get("confirm", {}), "top": top}
    bench = FAMILIES[family](seed)
    run = run_experiment(bench, make_spec(None, patch, seed), n_train=rows)
    edges = run.result.edges
    held = {tuple(e) for e in bench.held_out}
    conf = edges.loc[edges.confirmed.to_numpy(bool)]
    pairs = list(zip(conf.src_func.astype(str), conf.dst_func.astype(str), strict=True))
    q = dict(zip(pairs, conf.confirm_q_value.to_numpy(float), strict=True))
    score = dict(zip(pairs, conf.score.to_numpy(float), strict=True))
    names = bench.partial.node_names_dict["function"]
    index = {name: i for i, name in enumerate(names)}
    held_idx = pair_indices(bench.held_out, names)
    below = function_descendants(bench.partial), function_descendants(bench.full)
    kinds = Counter(
        kind_of(index[s], index[d], held_idx, *below)
        for (s, d) in pairs
        if q[s, d] < ALPHA and (s, d) not in held
    )
    # reverses of a held-out edge that was itself discovered
    beside = sum(
        q[s, d] < ALPHA and (d, s) in held and q.get((d, s), 1.0) < ALPHA for (s, d) in pairs
    )
    both = [(s, d) for (s, d) in pairs if (d, s) in q and s < d]  # each unordered pair once
    one_true = [(s, d) for (s, d) in both if ((s, d) in held) != ((d, s) in held)]
    true_first = sum(
        score[p] > score[p[::-1]] if p in held else score[p[::-1]] > score[p] for p in one_true
    )
    return {
        "seed": seed,
        "confirmed": len(pairs),
        "discoveries": int(sum(v < ALPHA for v in q.values())),
        "false": int(sum(kinds.values())),
        "kinds": {k: int(kinds.get(k, 0)) for k in KINDS},
        "reverse_beside_held_out": int(beside),
        "both_directions_confirmed": len(both),
        "both_one_held_out": len(one_true),
        "held_out_direction_scored_higher": int(true_first),
    }


def main() -> None:
    ap = base_parser(__doc__, default_out="benchmarks/results/false_discoveries.json")
    ap.add_argument("--top", type=int, default=50, help="confirm.top of every run")
    ap.add_argument("--rows", type=int, default=2000, help="training rows simulated")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument(
        "--keep-reverses",
        action="store_true",
        help="confirm the plain top candidates, reverses of better ones included (the "
        "confirmation before it passed over them; how its figures were measured)",
    )
    add_patch_argument(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.keep_reverses:
        import gsnn_edges.train

        gsnn_edges.train.without_reverses = lambda pairs: pairs
    report = {
        "top": args.top,
        "seeds": args.seeds,
        "patch": args.patch,
        "keep_reverses": args.keep_reverses,
        "families": {},
    }
    for family in args.families:
        runs = []
        for seed in args.seeds:
            runs.append(one_seed(family, seed, args.top, args.rows, args.patch))
            r = runs[-1]
            print(
                f"{family:17s} seed {seed:2d}  {r['false']}/{r['discoveries']} false  {r['kinds']}"
            )
        total = {k: sum(r["kinds"][k] for r in runs) for k in KINDS}
        sums = {
            k: sum(r[k] for r in runs)
            for k in (
                "discoveries",
                "false",
                "reverse_beside_held_out",
                "both_directions_confirmed",
                "both_one_held_out",
                "held_out_direction_scored_higher",
            )
        }
        report["families"][family] = {"runs": runs, "total": {**sums, "kinds": total}}
        print(
            f"\n{family}: {sums['false']} false of {sums['discoveries']} discoveries "
            f"in {len(runs)} runs"
        )
        for k in KINDS:
            print(f"  {k:28s} {total[k]}")
        print(
            f"  reverses discovered beside their held-out edge: {sums['reverse_beside_held_out']}"
        )
        print(
            f"  both directions confirmed: {sums['both_directions_confirmed']} pairs, "
            f"{sums['both_one_held_out']} with one held out, the held-out one scored higher "
            f"in {sums['held_out_direction_scored_higher']}\n"
        )
        write_json(args.out, report)


if __name__ == "__main__":
    main()
