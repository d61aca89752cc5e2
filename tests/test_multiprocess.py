"""Multi-process training (``multi_gpu=true``) without GPUs: 2 ranks on the CPU, gloo backend.

The same code path as ``torchrun --nproc_per_node=2 train.py multi_gpu=true device=cpu``
(torchrun only sets RANK/LOCAL_RANK/WORLD_SIZE/MASTER_* and starts the processes); on GPUs
it uses NCCL. Checks: the ranks end with identical weights and normalisers, only rank 0
writes the run folder's logs and checkpoints, and a resume continues on both ranks.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from helpers import compose, fast_overrides, needs_motion

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, port: int, overrides: list[str], out: str) -> None:
    import torch.distributed as dist

    from skillmimic.rl.runner import build_agent, close_agent

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    agent, run_dir, _ = build_agent(compose(overrides))
    try:
        agent.train()
        torch.save({"model": agent.model.state_dict(), "epoch": agent.epoch_num, "frame": agent.frame,
                    "run_dir": str(run_dir), "has_writer": agent.writer is not None,
                    "clips": agent.vec_env.env.clip_ids.clone()}, Path(out) / f"rank{rank}.pt")
    finally:
        close_agent(agent)
        dist.destroy_process_group()


def _launch(overrides: list[str], out: Path) -> list[dict]:
    out.mkdir(parents=True, exist_ok=True)
    mp.start_processes(_rank_main, args=(_free_port(), overrides, str(out)), nprocs=WORLD, join=True,
                       start_method="spawn")
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def _assert_same_weights(results: list[dict]) -> None:
    a, b = (r["model"] for r in results)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), f"ranks differ in {k}"


@needs_motion
def test_two_cpu_ranks_train_in_lockstep_and_resume(tmp_path):
    base = fast_overrides(tmp_path / "runs", "mp", multi_gpu="true", device="cpu", max_epochs=2,
                          **{"train.save_frequency": 0, "sim.num_threads": 1})
    first = _launch(base, tmp_path / "first")
    _assert_same_weights(first)
    assert [r["epoch"] for r in first] == [2, 2]
    assert first[0]["frame"] == 2 * WORLD * 4 * 32            # frames of both ranks are counted
    assert [r["has_writer"] for r in first] == [True, False]
    assert first[0]["run_dir"] == first[1]["run_dir"]           # one run folder, chosen by rank 0
    assert not torch.equal(first[0]["clips"], first[1]["clips"])   # each rank its own episodes
    runs = list((tmp_path / "runs" / "mp").iterdir())
    assert len(runs) == 1
    run = runs[0]
    assert sorted(p.name for p in (run / "nn").iterdir()) == ["mp.pth"]
    assert len(list((run / "summaries").iterdir())) == 1       # rank 0's event file only
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "nn", "summaries"]

    ckpt = run / "nn" / "mp.pth"
    saved = torch.load(ckpt, weights_only=False)["model"]
    again = [o for o in base if not o.startswith("max_epochs=")] + ["max_epochs=4", f"resume={ckpt}"]
    resumed = _launch(again, tmp_path / "second")
    _assert_same_weights(resumed)
    assert [r["epoch"] for r in resumed] == [4, 4]
    assert resumed[0]["run_dir"] == str(run)
    moved = [k for k in saved if saved[k].is_floating_point() and not torch.equal(saved[k], resumed[1]["model"][k])]
    assert moved, "rank 1 did not train after the resume"
    assert len(list((run / "summaries").iterdir())) == 2       # rank 0 appended a second event file
