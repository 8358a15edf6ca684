"""Multi-process training and evaluation through ``torch.distributed`` (``torchrun``; gloo on CPU, nccl on GPU).

Evaluation is sharded by whole batches: with a batch size ``B`` the test set is cut into the same batches
as in one process, and process ``r`` of ``W`` takes batches ``r, r + W, r + 2W, ...``. Every sample is
therefore seen exactly once (none padded or dropped at the last uneven batch) and inside exactly the same
batch as in a single process, so the summed counts, and the accuracies, equal the single-process ones
exactly. Counts are summed across processes with ``all_reduce``.

Example (two CPU processes)::

    torchrun --nproc_per_node=2 -m spikeconv evaluate checkpoints/mnist_lenet_qrelu.pt --timesteps 4 8
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import Dataset, Subset


def init_from_env() -> bool:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1).

    Uses nccl when CUDA is available, else gloo. Returns whether this is a multi-process run.

    Example:
        >>> init_from_env()  # a plain single process
        False
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend)
    return True


def rank_and_size() -> tuple[int, int]:
    """``(rank, world size)``; ``(0, 1)`` outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    """True in the process that prints and writes files (rank 0, or the only process)."""
    return rank_and_size()[0] == 0


def shard_batches(dataset: Dataset, batch_size: int) -> Dataset:
    """This process's whole batches of ``dataset`` (batches ``rank, rank + W, ...``); see the module docstring.

    Load the result with the same ``batch_size`` and no shuffling.

    Example:
        >>> len(shard_batches(list(range(10)), 4))  # one process: everything
        10
    """
    rank, size = rank_and_size()
    if size == 1:
        return dataset
    return Subset(dataset, batch_shard_indices(len(dataset), batch_size, rank, size))


def batch_shard_indices(n: int, batch_size: int, rank: int, size: int) -> list[int]:
    """Sample indices of process ``rank`` of ``size``: the batches ``rank, rank + size, ...`` of ``range(n)``.

    Example:
        >>> batch_shard_indices(7, 2, 1, 2)  # batches [0 1] [2 3] [4 5] [6]: process 1 takes the 2nd and 4th
        [2, 3, 6]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    return [i for b in range(rank, -(-n // batch_size), size)
            for i in range(b * batch_size, min((b + 1) * batch_size, n))]


def all_sum(tensor: Tensor) -> Tensor:
    """``tensor`` summed over all processes (the tensor itself outside a process group).

    Example:
        >>> all_sum(torch.tensor([3, 4])).tolist()
        [3, 4]
    """
    rank, size = rank_and_size()
    if size == 1:
        return tensor
    backend = dist.get_backend()
    moved = tensor.cuda() if backend == "nccl" else tensor.cpu()
    dist.all_reduce(moved, op=dist.ReduceOp.SUM)
    return moved.to(tensor.device)


def barrier() -> None:
    """Wait for every process (no-op outside a process group)."""
    if rank_and_size()[1] > 1:
        dist.barrier()


def shutdown() -> None:
    """Leave the process group, if any."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
