"""Several training processes (``torchrun``, ``multi_gpu=true``): one process group per run.

Why here and not in rl-games: rl-games 1.6.5 starts its process group inside the agent's
constructor with the NCCL backend and moves the agent to ``cuda:<LOCAL_RANK>``, so its
``multi_gpu`` mode cannot run without GPUs, and the run folder (chosen before the agent
exists) would be picked by every rank on its own. Here the group starts before anything
is built -- NCCL on CUDA, gloo on the CPU, the same code otherwise -- rank 0 picks the run
folder and shares it, and the agent (``RunManagement``) takes over rl-games' rank
bookkeeping so that gradient all-reduce, learning-rate broadcast and KL averaging in
rl-games' update run unchanged over either backend.
"""

from __future__ import annotations

from datetime import timedelta

import torch
import torch.distributed as dist

from .config import distributed_rank


def backend_for(device: str | torch.device) -> str:
    """NCCL for CUDA tensors, gloo for CPU tensors."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def init_distributed(device: str) -> tuple[int, int, int]:
    """Join the torchrun job (idempotent); returns (LOCAL_RANK, RANK, WORLD_SIZE)."""
    local, rank, world = distributed_rank(device)
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend_for(device), rank=rank, world_size=world, timeout=timedelta(minutes=10))
    return local, rank, world


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def broadcast_object(obj, src: int = 0):
    """``obj`` of rank ``src`` on every rank (pickled; for small objects such as paths)."""
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


__all__ = ["backend_for", "init_distributed", "is_distributed", "broadcast_object", "rank"]
