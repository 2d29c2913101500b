"""torch.distributed for ``scan`` under torchrun: which rows are mine, and when all ranks are done.

torchrun sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` for
every process it starts (torch's elastic launch docs). The unit of work is a block of
``--batch-size`` consecutive rows (one forward batch, the same batches a single process makes, so
every row sees the same batch companions and the same floats); rank r scans blocks ``r, r+W,
r+2W, …`` (round-robin balances cheap and expensive stretches of a dataset) on
``cuda:LOCAL_RANK`` when CUDA is there, else on the CPU; coordination is a few tiny CPU tensors
over gloo (``cpu:gloo,cuda:nccl`` on GPUs), so no rank needs NCCL for it. Every rank journals
its own segment in the shared journal folder; rank 0 merges them after a barrier (the folder
must be on a file system all ranks see, as ``--out`` is under SLURM).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

#: A long scan's ranks finish minutes or hours apart; the barrier must outwait the slowest.
TIMEOUT_ENV = "FGA_TUI_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 7 * 24 * 3600


@dataclass(frozen=True)
class Dist:
    """This process's place in the job (rank 0 of 1 when not under torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    active: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def mine(self, position: int, block: int = 1) -> bool:
        """Whether row ``position`` (0-based) belongs to this rank, in blocks of ``block`` rows."""
        return (position // block) % self.world_size == self.rank

    def device(self, spec: str) -> str:
        """``auto`` under torchrun means this rank's own GPU."""
        if not self.active or spec != "auto":
            return spec
        import torch

        return f"cuda:{self.local_rank}" if torch.cuda.is_available() else "cpu"

    # ---- collectives (no-ops in a single process) ---------------------------------------------

    def all_ok(self, ok: bool) -> bool:
        """True when every rank says ok (and a barrier)."""
        if not self.active:
            return ok
        import torch
        import torch.distributed as dist

        flag = torch.tensor([0 if ok else 1], dtype=torch.int64)
        dist.all_reduce(flag)
        return int(flag.item()) == 0

    def gather_counts(self, count: int) -> list[int]:
        """Every rank's count, in rank order (and a barrier)."""
        if not self.active:
            return [count]
        import torch
        import torch.distributed as dist

        counts = torch.zeros(self.world_size, dtype=torch.int64)
        counts[self.rank] = count
        dist.all_reduce(counts)
        return [int(c) for c in counts.tolist()]

    def close(self) -> None:
        if self.active:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def from_env(env: Any = os.environ) -> Dist:
    """The torchrun environment, or a single process."""
    try:
        world = int(env.get("WORLD_SIZE", "1"))
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        return Dist()
    if world <= 1 or "MASTER_ADDR" not in env:
        return Dist()
    return Dist(rank=rank, world_size=world, local_rank=local, active=True)


def init(env: Any = os.environ) -> Dist:
    """Join the torchrun job (a no-op outside torchrun)."""
    d = from_env(env)
    if not d.active:
        return d
    import torch
    import torch.distributed as dist

    if not dist.is_initialized():
        timeout = timedelta(seconds=float(env.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
        backend = "gloo"
        if torch.cuda.is_available() and dist.is_nccl_available():
            torch.cuda.set_device(d.local_rank)
            backend = "cpu:gloo,cuda:nccl"
        dist.init_process_group(backend=backend, timeout=timeout)
    return d
