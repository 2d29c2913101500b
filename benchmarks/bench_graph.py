"""Crystal-graph build time: upstream ALIGNN's builder vs ``fga_tui.structure.graph.build_graph``.

Run: ``python benchmarks/bench_graph.py [--repeats 7] [--no-dgl]``. Prints a table, asserts no time.

What is timed, per structure (cubic SrTiO3 supercells: 5, 40, 135, 320, 1000 atoms):

- ``upstream edges``: ``alignn.graphs.nearest_neighbor_edges(use_canonize=True)`` +
  ``build_undirected_edgedata`` on a prebuilt jarvis ``Atoms`` (neighbour search, k-NN, canonize,
  displacements). No features, no line graph: a lower bound of upstream's cost.
- ``upstream full``: ``Graph.atom_dgl_multigraph(neighbor_strategy="k-nearest", cutoff=8,
  max_neighbors=12, atom_features="cgcnn", use_canonize=True, compute_line_graph=True)``: the above
  plus CGCNN features, the DGL graph, ``line_graph(shared=True)`` and ``compute_bond_cosines``.
  Needs DGL (through ``fga_tui.model.dgl_backend``); skipped when it does not import.
- ``ours``: ``build_graph(structure)`` from a ``Structure``: the same outputs as "upstream full"
  (features, edges, line graph, cosines) as numpy arrays.

Before timing, each structure's outputs are checked to be the same multisets, bit for bit:
(src, dst, r) edges and (bond e1, bond e2, cosine) line-graph edges.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fga_tui.io.types import Structure
from fga_tui.structure.graph import build_graph
from fga_tui.structure.types import CrystalGraph

SRTIO3_FRAC = np.array([[0, 0, 0], [0.5, 0.5, 0.5], [0.5, 0.5, 0], [0.5, 0, 0.5], [0, 0.5, 0.5]])
SRTIO3_ELEMENTS = ("Sr", "Ti", "O", "O", "O")


def srtio3(reps: tuple[int, int, int]) -> Structure:
    """Cubic SrTiO3 (a = 3.905 Å) repeated ``reps`` times: exact ties in every shell."""
    shifts = np.array(
        [(i, j, k) for i in range(reps[0]) for j in range(reps[1]) for k in range(reps[2])]
    )
    frac = ((SRTIO3_FRAC[None] + shifts[:, None]) / np.array(reps)).reshape(-1, 3)
    lattice = np.eye(3) * 3.905 * np.array(reps)[:, None]
    return Structure(lattice, frac, SRTIO3_ELEMENTS * len(shifts))


def median_ms(fn: Callable[[], Any], repeats: int, clock: Callable[[], float]) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times) * 1e3


def _edge_rows(src: np.ndarray, dst: np.ndarray, r: np.ndarray) -> np.ndarray:
    """int64 [E, 5]: (src, dst, bits of the float32 r) — an exact bond identity."""
    r32 = np.ascontiguousarray(r, dtype=np.float32)
    return np.column_stack([src, dst, r32.view(np.int32)]).astype(np.int64)


def _sorted(rows: np.ndarray) -> np.ndarray:
    return rows[np.lexsort(rows.T[::-1])]


def same_graph(ours: CrystalGraph, src, dst, r, lg_src, lg_dst, lg_h) -> bool:
    """Whether edge and line-graph multisets (with r and cosine bits) are identical."""
    mine_e = _edge_rows(ours.edge_src, ours.edge_dst, ours.edge_r)
    ref_e = _edge_rows(src, dst, r)
    if mine_e.shape != ref_e.shape or not np.array_equal(_sorted(mine_e), _sorted(ref_e)):
        return False
    h_bits = np.ascontiguousarray(lg_h, dtype=np.float32).view(np.int32)
    mine_t = np.column_stack([mine_e[ours.lg_src], mine_e[ours.lg_dst], ours.lg_h.view(np.int32)])
    ref_t = np.column_stack([ref_e[lg_src], ref_e[lg_dst], h_bits])
    return mine_t.shape == ref_t.shape and np.array_equal(_sorted(mine_t), _sorted(ref_t))


def load_dgl(graphs: Any) -> bool:
    """Make ``alignn.graphs`` DGL-capable through the project's shim; False if DGL is absent."""
    try:
        from fga_tui.model.dgl_backend import import_dgl

        dgl = import_dgl()
    except ImportError:
        return False
    if graphs.dgl is None:  # alignn.graphs was imported before DGL could be
        graphs.dgl = dgl
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-dgl", action="store_true", help="skip the full upstream builder")
    parser.add_argument(
        "--cpu", action="store_true", help="time process CPU time, not wall time (busy machines)"
    )
    args = parser.parse_args()
    clock = time.process_time if args.cpu else time.perf_counter

    import torch
    from alignn import graphs
    from jarvis.core.atoms import Atoms

    torch.set_num_threads(1)
    use_dgl = not args.no_dgl and load_dgl(graphs)

    cells = [srtio3((1, 1, 1)), srtio3((2, 2, 2)), srtio3((3, 3, 3)), srtio3((4, 4, 4))]
    cells.append(srtio3((5, 5, 8)))
    rows = []
    for s in cells:
        atoms = Atoms(lattice_mat=s.lattice, coords=s.frac_coords, elements=list(s.elements))
        repeats = args.repeats if s.num_atoms <= 320 else max(1, args.repeats // 3)

        def upstream_edges(atoms: Atoms = atoms) -> tuple:
            edges, _ = graphs.nearest_neighbor_edges(
                atoms=atoms, cutoff=8.0, max_neighbors=12, use_canonize=True
            )
            return graphs.build_undirected_edgedata(atoms, edges)

        def upstream_full(atoms: Atoms = atoms) -> tuple:
            return graphs.Graph.atom_dgl_multigraph(
                atoms,
                neighbor_strategy="k-nearest",
                cutoff=8.0,
                max_neighbors=12,
                atom_features="cgcnn",
                use_canonize=True,
                compute_line_graph=True,
            )

        ours = build_graph(s)
        if use_dgl:
            g, lg = upstream_full()
            u, v = (x.numpy() for x in g.edges())
            lu, lv = (x.numpy() for x in lg.edges())
            ok = same_graph(ours, u, v, g.edata["r"].numpy(), lu, lv, lg.edata["h"].numpy())
            ok = ok and np.array_equal(ours.atom_features, g.ndata["atom_features"].numpy())
        else:
            u, v, r, _ = upstream_edges()
            mine_e = _sorted(_edge_rows(ours.edge_src, ours.edge_dst, ours.edge_r))
            ok = np.array_equal(mine_e, _sorted(_edge_rows(u.numpy(), v.numpy(), r.numpy())))

        t_edges = median_ms(upstream_edges, repeats, clock)
        t_full = median_ms(upstream_full, repeats, clock) if use_dgl else float("nan")
        t_ours = median_ms(lambda s=s: build_graph(s), repeats, clock)
        rows.append((s.num_atoms, ours.num_edges, ours.num_lg_edges, t_edges, t_full, t_ours, ok))

    kind = "CPU" if args.cpu else "wall"
    few = max(1, args.repeats // 3)
    print(f"graph build, median {kind} time of {args.repeats} runs (1000 atoms: {few})")
    print(f"{platform.processor() or platform.machine()}, numpy {np.__version__}, torch 1 thread")
    head = (
        f"{'atoms':>5} {'edges':>6} {'lg edges':>8} {'upstream edges':>15} {'upstream full':>14} "
        f"{'ours':>8} {'full/ours':>9} {'edges/ours':>10} {'identical':>9}"
    )
    print(head)
    print("-" * len(head))
    for n, e, t, te, tf, to, ok in rows:
        print(
            f"{n:>5} {e:>6} {t:>8} {te:>12.1f} ms {tf:>11.1f} ms {to:>5.1f} ms "
            f"{tf / to:>8.1f}x {te / to:>9.1f}x {'yes' if ok else 'NO':>9}"
        )
    if not use_dgl:
        print("upstream full skipped (DGL not importable or --no-dgl)")


if __name__ == "__main__":
    main()
