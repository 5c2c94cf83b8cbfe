"""The few torch.distributed helpers the metrics need: rank/world size, a rank's share, sum, gather.

Without an initialized process group of more than one process every helper is a
no-op, so the same code runs in one process. With one, ``all_reduce_sum`` and
``all_gather_rows`` are collectives: call them on every rank, never inside
``if is_main_process``. NCCL groups communicate through CUDA tensors, all others
(gloo) through CPU tensors; results come back on the input's device.
"""

from __future__ import annotations

import torch
import torch.distributed as dist


def dist_info(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world_size): the given values, else torch.distributed's, else (0, 1)."""
    initialized = dist.is_available() and dist.is_initialized()
    if rank is None:
        rank = dist.get_rank() if initialized else 0
    if world_size is None:
        world_size = dist.get_world_size() if initialized else 1
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} not in [0, world_size={world_size})")
    return rank, world_size


def is_distributed() -> bool:
    """True when a process group of more than one process is initialized."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _comm_device() -> torch.device:
    """NCCL needs CUDA tensors; gloo (and everything else here) uses CPU tensors."""
    if "nccl" in str(dist.get_backend()).lower():
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum of ``t`` over all processes (a no-op in a single process). Call on every rank."""
    if not is_distributed():
        return t
    x = t.to(_comm_device())
    dist.all_reduce(x, op=dist.ReduceOp.SUM)
    return x.to(t.device)


def all_gather_rows(t: torch.Tensor) -> torch.Tensor:
    """Concatenate (in rank order) the rows of ``t`` from all processes; row counts may differ."""
    if not is_distributed():
        return t
    dev = _comm_device()
    world = dist.get_world_size()
    n = torch.tensor([t.shape[0]], dtype=torch.int64, device=dev)
    counts = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(counts, n)
    counts = [int(c.item()) for c in counts]
    m = max(counts)
    pad = torch.zeros((m, *t.shape[1:]), dtype=t.dtype, device=dev)
    pad[: t.shape[0]] = t.to(dev)
    out = [torch.zeros_like(pad) for _ in range(world)]
    dist.all_gather(out, pad)
    return torch.cat([o[:c] for o, c in zip(out, counts)]).to(t.device)


def split_count(num: int, rank: int, world_size: int) -> tuple[int, int]:
    """(offset, count) of rank's contiguous share: ``num//W + (rank < num%W)`` items."""
    base, rem = divmod(num, world_size)
    return rank * base + min(rank, rem), base + (1 if rank < rem else 0)


__all__ = ["all_gather_rows", "all_reduce_sum", "dist_info", "is_distributed", "split_count"]
