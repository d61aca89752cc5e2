"""Stitched Trajectory Graph (STG): for every frame, its most similar frame in each other skill.

    python -m skillmimic.augment.stg build MOTION_DIR OUT.npz [--device cpu] [--chunk-mb 32]
    python -m skillmimic.augment.stg info OUT.npz

Nodes are all frames (clip, frame) of a motion folder. For each node and each *other*
skill (class) there is one directed edge to the frame of that skill that maximises the
similarity S of :mod:`.similarity` after heading/position alignment (weights by the
source's class, facts §2.1), carrying S and the masked-step count N (facts §2.4). Candidate
frames exclude 0, 1 and L-1 of their clip (they cannot start an episode) and missing frames.

No-match cases (documented; the edge is stored with ``dst_clip = dst_frame = -1``,
similarity 0, ``masked_steps = -1`` and absent from the networkx graph, where the source
node lists the class in its ``no_match`` attribute):

* the best S is below 1e-10 (the original's rule);
* the source frame is missing (all-zero in the file): it has no pose to compare;
* the other skill has no candidate frame at all (every clip shorter than 4 frames).

Search: exact argmax, not brute force. All cost terms but the joint-rotation angles are
squared distances of per-frame vectors and the angles have a tight Euclidean lower bound
(:func:`.similarity.embedding`), so one matrix product per (source chunk, skill) bounds
every pair; the exact cost is evaluated on the ``topk`` best-bounded candidates and, only
for sources whose k-th bound is below the best exact cost U found, on every candidate
whose bound is below U.
Memory is bounded by processing source frames in chunks (``chunk_mb``).

File format (``.npz``, numpy only, loadable with ``allow_pickle=False``), one row per
(source frame, other class), sorted by source clip, source frame, target class:

==================  =======  =====================================================
``meta``            str      JSON: format, version, weights, threshold, build info
``clip_files``      str (C)  clip paths relative to the motion folder (posix)
``clip_labels``     int (C)  skill label of each clip (first 3 characters of its name)
``clip_lengths``    int (C)  frames per clip
``src_clip``        int (E)  clip index (into ``clip_files``) of the source frame
``src_frame``       int (E)  frame of the source
``dst_label``       int (E)  target skill
``dst_clip``        int (E)  target clip index, -1 for no match
``dst_frame``       int (E)  target frame, -1 for no match
``similarity``      f64 (E)  S of the edge, 0 for no match
``masked_steps``    int (E)  N, -1 for no match
==================  =======  =====================================================

Clip indices follow the motion library's order (:func:`skillmimic.motion.io.find_clips`);
consumers map clips by ``clip_files``, never by index alone.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .similarity import (
    STG_BALL, STG_LOCOMOTION, FrameFeatures, SimilarityWeights, euclidean_part, library_features,
    masked_steps, rotation_bound_part, rotation_cost, weights_for_label,
)

FORMAT = "skillmimic-stg"
VERSION = 1
NO_MATCH_SIMILARITY = 1e-10
_ARRAYS = ("src_clip", "src_frame", "dst_label", "dst_clip", "dst_frame", "similarity", "masked_steps")


@dataclass
class StitchedGraph:
    """The graph as flat edge arrays (see the module docstring for the meaning of each)."""

    clip_files: list[str]
    clip_labels: np.ndarray
    clip_lengths: np.ndarray
    src_clip: np.ndarray
    src_frame: np.ndarray
    dst_label: np.ndarray
    dst_clip: np.ndarray
    dst_frame: np.ndarray
    similarity: np.ndarray
    masked_steps: np.ndarray
    meta: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ shape
    @property
    def classes(self) -> list[int]:
        return sorted(set(int(x) for x in self.clip_labels))

    @property
    def num_frames(self) -> int:
        return int(self.clip_lengths.sum())

    @property
    def num_slots(self) -> int:
        """Edges per source frame: one per other class."""
        return len(self.classes) - 1

    @property
    def matched(self) -> np.ndarray:
        return self.dst_clip >= 0

    def dense(self) -> dict[str, np.ndarray]:
        """Edge arrays reshaped to (num_frames, num_slots), rows in flat frame order
        (clips in file order, frames in time order) -- the form the env indexes."""
        shape = (self.num_frames, self.num_slots)
        return {name: getattr(self, name).reshape(shape) for name in _ARRAYS}

    def validate(self) -> None:
        n = self.num_frames * self.num_slots
        lengths = {name: len(getattr(self, name)) for name in _ARRAYS}
        if any(v != n for v in lengths.values()):
            raise ValueError(f"graph: expected {n} edge rows (frames x other classes), got {lengths}")
        if not (len(self.clip_files) == len(self.clip_labels) == len(self.clip_lengths)):
            raise ValueError("graph: clip_files, clip_labels and clip_lengths differ in length")

    # ------------------------------------------------------------------ io
    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"format": FORMAT, "version": VERSION, **self.meta}
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(
            tmp, meta=np.array(json.dumps(meta)), clip_files=np.array(self.clip_files, dtype=str),
            clip_labels=self.clip_labels.astype(np.int64), clip_lengths=self.clip_lengths.astype(np.int64),
            **{name: getattr(self, name) for name in _ARRAYS})
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "StitchedGraph":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            if meta.get("format") != FORMAT:
                raise ValueError(f"{path}: not a {FORMAT} file (format={meta.get('format')!r})")
            if int(meta.get("version", -1)) > VERSION:
                raise ValueError(f"{path}: format version {meta['version']} is newer than this code ({VERSION})")
            g = cls(clip_files=[str(s) for s in z["clip_files"]], clip_labels=z["clip_labels"],
                    clip_lengths=z["clip_lengths"], meta=meta, **{name: z[name] for name in _ARRAYS})
        g.validate()
        return g

    # ------------------------------------------------------------------ networkx
    def to_networkx(self):
        """``networkx.DiGraph``: node ``(clip, frame)`` with ``label`` and ``no_match`` (the
        classes without an edge); edge attributes ``similarity``, ``masked_steps`` and
        ``label`` (target class); graph attributes ``clip_files``, ``clip_labels``, ``meta``."""
        import networkx as nx

        g = nx.DiGraph(clip_files=list(self.clip_files), clip_labels=[int(x) for x in self.clip_labels],
                       meta=dict(self.meta))
        labels = np.repeat(self.clip_labels, self.clip_lengths)
        clips = np.repeat(np.arange(len(self.clip_files)), self.clip_lengths)
        frames = np.concatenate([np.arange(n) for n in self.clip_lengths]) if len(self.clip_lengths) else []
        nm = ~self.matched
        no_match: dict[tuple[int, int], list[int]] = {}
        for c, f, lab in zip(self.src_clip[nm].tolist(), self.src_frame[nm].tolist(), self.dst_label[nm].tolist()):
            no_match.setdefault((c, f), []).append(lab)
        g.add_nodes_from(((c, f), {"label": lab, "no_match": no_match.get((c, f), [])})
                         for c, f, lab in zip(clips.tolist(), frames.tolist(), labels.tolist()))
        m = self.matched
        g.add_edges_from(
            ((sc, sf), (dc, df), {"similarity": s, "masked_steps": n, "label": lab})
            for sc, sf, dc, df, s, n, lab in zip(
                self.src_clip[m].tolist(), self.src_frame[m].tolist(), self.dst_clip[m].tolist(),
                self.dst_frame[m].tolist(), self.similarity[m].tolist(), self.masked_steps[m].tolist(),
                self.dst_label[m].tolist()))
        return g


def load_graph(path: str | os.PathLike):
    """Load a saved graph as a ``networkx.DiGraph`` (see :meth:`StitchedGraph.to_networkx`)."""
    return StitchedGraph.load(path).to_networkx()


# --------------------------------------------------------------------------- search
def _frame_index(motion):
    """Per flat frame: clip id, frame within clip, label, and whether it may be a target."""
    clip_of = torch.repeat_interleave(torch.arange(motion.num_clips, device=motion.device), motion.clip_lengths)
    frame = torch.arange(motion.num_frames, device=motion.device) - motion.clip_starts[clip_of]
    length = motion.clip_lengths[clip_of]
    candidate = (frame >= 2) & (frame <= length - 2) & motion.valid
    return clip_of, frame, motion.clip_labels[clip_of], candidate


@dataclass
class SearchSet:
    """Precomputed per-frame arrays of the search for one weight set (rows = frames)."""

    euc: torch.Tensor     # (N, De) exact part of the cost, see similarity.euclidean_part
    emb: torch.Tensor     # (N, De + Dr) lower-bound embedding
    sq: torch.Tensor      # (N,) squared norms of emb
    joint: torch.Tensor   # (N, 52, 4)
    root: torch.Tensor    # (N, 4)

    @classmethod
    def of(cls, f: FrameFeatures, w: SimilarityWeights) -> "SearchSet":
        euc = euclidean_part(f, w)
        emb = torch.cat([euc, rotation_bound_part(f, w)], -1)
        return cls(euc, emb, emb.pow(2).sum(-1), f.joint_quat, f.root_quat)

    def __getitem__(self, rows) -> "SearchSet":
        return SearchSet(self.euc[rows], self.emb[rows], self.sq[rows], self.joint[rows], self.root[rows])

    def __len__(self) -> int:
        return self.euc.shape[0]


def _pair_costs(src: SearchSet, cand: SearchSet, rows: torch.Tensor, cols: torch.Tensor, w: SimilarityWeights,
                chunk_bytes: int) -> torch.Tensor:
    """Exact cost of the pairs (src[rows[i]], cand[cols[i]]), in chunks of pairs."""
    per_pair = (cand.joint.shape[-2] * 4 * 6 + cand.euc.shape[-1] * 3) * src.euc.element_size()
    step = max(1, chunk_bytes // per_pair)
    out = torch.empty(rows.shape[0], dtype=src.euc.dtype, device=src.euc.device)
    for s in range(0, rows.shape[0], step):
        r, c = rows[s:s + step], cols[s:s + step]
        e = (src.euc[r] - cand.euc[c]).pow(2).sum(-1)
        out[s:s + step] = e + rotation_cost(src.joint[r], cand.joint[c], src.root[r], cand.root[c], w)
    return out


def _row_argmin(n_rows: int, rows: torch.Tensor, cols: torch.Tensor, cost: torch.Tensor):
    """Per row, the minimum cost over its pairs and the smallest column attaining it."""
    best = torch.full((n_rows,), float("inf"), dtype=cost.dtype, device=cost.device)
    best = best.scatter_reduce(0, rows, cost, "amin")
    hit = cost == best[rows]
    col = torch.full((n_rows,), torch.iinfo(torch.long).max, dtype=torch.long, device=cost.device)
    col = col.scatter_reduce(0, rows[hit], cols[hit], "amin")
    return best, col


def best_matches(src: SearchSet, cand: SearchSet, w: SimilarityWeights, chunk_bytes: int = 32 << 20,
                 topk: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """For each source row, (index of the minimum-cost candidate, that cost): exact.

    Per chunk of sources, one matrix product gives the lower bound of every pair. The exact
    cost of the ``topk`` best-bounded candidates gives an upper bound U of each source's
    minimum; a source is settled when no other candidate's bound is below U. For the others,
    exactly the candidates whose bound is below U are evaluated (measured on BallPlay-M:
    ~80 of ~9000 per source on average, when the first test fails)."""
    n_src, n_cand = len(src), len(cand)
    dev = src.euc.device
    best_cost = torch.empty(n_src, dtype=src.euc.dtype, device=dev)
    best_idx = torch.empty(n_src, dtype=torch.long, device=dev)
    if n_src == 0:
        return best_idx, best_cost
    k = min(topk, n_cand)
    per_row = src.euc.element_size() * (3 * n_cand + k * (src.joint.shape[-2] * 4 * 6 + src.euc.shape[-1] * 3))
    rows = max(1, chunk_bytes // per_row)
    sq_max = cand.sq.max()
    for s in range(0, n_src, rows):
        sl = torch.arange(s, min(s + rows, n_src), device=dev)
        sub = src[sl]
        lb = torch.addmm(sub.sq[:, None] + cand.sq[None, :], sub.emb, cand.emb.T, alpha=-2.0)
        slack = 1e-9 * (sub.sq + sq_max) + 1e-12     # float error of the expanded product
        lb_k, idx_k = lb.topk(k, dim=1, largest=False, sorted=True)
        exact = (sub.euc[:, None] - cand.euc[idx_k]).pow(2).sum(-1) + rotation_cost(
            sub.joint[:, None], cand.joint[idx_k], sub.root[:, None], cand.root[idx_k], w)
        cost, j = exact.min(dim=1)
        col = idx_k.gather(1, j[:, None]).squeeze(1)
        if k < n_cand:
            need = (lb_k[:, -1] - slack < cost).nonzero().flatten()
            if len(need):
                pr, pc = (lb[need] - slack[need, None] <= cost[need, None]).nonzero(as_tuple=True)
                c2, col2 = _row_argmin(len(need), pr, pc, _pair_costs(sub[need], cand, pr, pc, w, chunk_bytes))
                cost[need], col[need] = c2, col2
        best_cost[sl], best_idx[sl] = cost, col
    return best_idx, best_cost


def build_graph(motion, clip_names: list[str] | None = None, ball_weights: SimilarityWeights = STG_BALL,
                locomotion_weights: SimilarityWeights = STG_LOCOMOTION, chunk_mb: float = 32, topk: int = 8,
                threshold: float = NO_MATCH_SIMILARITY, dtype: torch.dtype = torch.float64, log=None) -> StitchedGraph:
    """Build the graph of a :class:`~skillmimic.motion.MotionLibrary`.

    ``clip_names`` (default: file names) are stored to identify clips when loading. The
    search runs in ``dtype`` (float64 by default: the result is then the exact argmax up
    to ties closer than ~1e-12)."""
    t0 = time.perf_counter()
    chunk_bytes = int(chunk_mb * (1 << 20))
    feats = library_features(motion).to(dtype=dtype).heading_aligned()
    clip_of, frame_of, label_of, candidate = _frame_index(motion)
    classes = sorted(set(motion.clip_labels.tolist()))
    nslot = len(classes) - 1
    F = motion.num_frames
    dev = motion.device
    dst = torch.full((F, nslot), -1, dtype=torch.long, device=dev)
    sim = torch.zeros(F, nslot, dtype=torch.float64, device=dev)
    full_sets: dict[SimilarityWeights, SearchSet] = {}
    cand_sets: dict[tuple[SimilarityWeights, int], SearchSet] = {}
    cand_rows = {c: ((label_of == c) & candidate).nonzero().flatten() for c in classes}
    for c in classes:
        w = weights_for_label(c, ball_weights, locomotion_weights)
        if w not in full_sets:
            full_sets[w] = SearchSet.of(feats, w)
        src_rows = ((label_of == c) & motion.valid).nonzero().flatten()
        src = full_sets[w][src_rows]
        others = [x for x in classes if x != c]
        for slot, c2 in enumerate(others):
            if len(src_rows) == 0 or len(cand_rows[c2]) == 0:
                continue
            if (w, c2) not in cand_sets:
                cand_sets[w, c2] = full_sets[w][cand_rows[c2]]
            idx, cost = best_matches(src, cand_sets[w, c2], w, chunk_bytes=chunk_bytes, topk=topk)
            s = torch.exp(-cost)
            ok = s >= threshold
            dst[src_rows[ok], slot] = cand_rows[c2][idx[ok]]
            sim[src_rows[ok], slot] = s[ok]
        if log:
            log(f"  class {c:03d}: {len(src_rows)} source frames done ({time.perf_counter() - t0:.1f} s)")

    slot_labels = torch.tensor([[x for x in classes if x != c] for c in classes], dtype=torch.long, device=dev)
    class_pos = {c: i for i, c in enumerate(classes)}
    row_class = torch.tensor([class_pos[int(x)] for x in motion.clip_labels.tolist()], device=dev)[clip_of]
    matched = dst >= 0
    safe = dst.clamp_min(0)
    n = masked_steps(sim)
    to_np = lambda t: t.reshape(-1).cpu().numpy()  # noqa: E731
    names = clip_names if clip_names is not None else [Path(f).name for f in motion.files]
    meta = {
        "weights": {"ball": ball_weights.as_dict(), "locomotion": locomotion_weights.as_dict()},
        "no_match_similarity": threshold, "classes": classes,
        "build_seconds": round(time.perf_counter() - t0, 3), "topk": topk, "chunk_mb": chunk_mb,
    }
    return StitchedGraph(
        clip_files=list(names), clip_labels=motion.clip_labels.cpu().numpy().astype(np.int64),
        clip_lengths=motion.clip_lengths.cpu().numpy().astype(np.int64),
        src_clip=to_np(clip_of[:, None].expand(F, nslot)), src_frame=to_np(frame_of[:, None].expand(F, nslot)),
        dst_label=to_np(slot_labels[row_class]),
        dst_clip=to_np(torch.where(matched, clip_of[safe], -1)),
        dst_frame=to_np(torch.where(matched, frame_of[safe], -1)),
        similarity=to_np(torch.where(matched, sim, 0.0)),
        masked_steps=to_np(torch.where(matched, n, -1)),
        meta=meta)


# --------------------------------------------------------------------------- CLI
def _rss_mb() -> float:
    """Current resident set size (MB), Linux /proc; NaN elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024


def summary(g: StitchedGraph) -> str:
    m = g.matched
    lines = [f"clips {len(g.clip_files)}, frames {g.num_frames}, classes {g.classes}, "
             f"edges {int(m.sum())} (+{int((~m).sum())} no-match of {len(m)} slots)"]
    for c in g.classes:
        rows = (g.clip_labels[g.src_clip] == c) & m
        if rows.any():
            s = g.similarity[rows]
            lines.append(f"  from {c:03d}: S median {np.median(s):.3g}, max {s.max():.3g}, "
                         f"N median {int(np.median(g.masked_steps[rows]))}, no-match "
                         f"{int(((g.clip_labels[g.src_clip] == c) & ~m).sum())}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m skillmimic.augment.stg", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build the graph of a motion folder and save it (.npz)")
    b.add_argument("motion_dir", type=Path)
    b.add_argument("out", type=Path)
    b.add_argument("--device", default="cpu")
    b.add_argument("--chunk-mb", type=float, default=32,
                   help="working-memory budget per chunk, MB (default 32: larger chunks measured slower on CPU)")
    b.add_argument("--topk", type=int, default=8, help="candidates checked exactly per source before the bound test")
    i = sub.add_parser("info", help="print a summary of a saved graph")
    i.add_argument("graph", type=Path)
    args = parser.parse_args(argv)

    if args.cmd == "info":
        print(summary(StitchedGraph.load(args.graph)))
        return 0

    from ..motion import MotionFileError, MotionLibrary

    t = time.perf_counter()
    try:
        motion = MotionLibrary(args.motion_dir, device=args.device, dtype=torch.float64)
    except MotionFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    load_s = time.perf_counter() - t
    root = args.motion_dir if args.motion_dir.is_dir() else args.motion_dir.parent
    names = [Path(os.path.relpath(f, root)).as_posix() for f in motion.files]
    print(f"loaded {motion} in {load_s:.1f} s; RSS {_rss_mb():.0f} MB")
    if motion.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(motion.device)
    rss_before = _rss_mb()
    t, cpu = time.perf_counter(), time.process_time()
    g = build_graph(motion, clip_names=names, chunk_mb=args.chunk_mb, topk=args.topk, log=print)
    build_s, build_cpu = time.perf_counter() - t, time.process_time() - cpu
    g.meta["motion_dir"] = str(args.motion_dir)
    path = g.save(args.out)
    print(summary(g))
    print(f"build time {build_s:.1f} s wall, {build_cpu:.1f} s CPU (library load {load_s:.1f} s excluded); "
          f"RSS before build {rss_before:.0f} MB, process peak RSS {_peak_rss_mb():.0f} MB"
          + (f", CUDA peak {torch.cuda.max_memory_allocated(motion.device) / 2**20:.0f} MB"
             if motion.device.type == "cuda" else ""))
    print(f"saved {path} ({path.stat().st_size / 2**20:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
