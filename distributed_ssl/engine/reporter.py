"""What the Trainer needs from Ray Train, behind one small interface: rank and world size, this rank's batches,
the checkpoint to restore, and a place to send reports with their checkpoints.

`RayTrainReporter` is the real one, used inside a Ray Train worker; `InProcessReporter` runs the same Trainer in
a plain process (tests, notebooks): it collects the records in a list, keeps checkpoints in a temporary folder and
takes the batches of each epoch from a list or a function.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import torch

from distributed_ssl.engine.reports import Report

Batch = dict[str, torch.Tensor]


class Reporter(Protocol):
    """The Trainer's view of its launcher."""

    rank: int
    world_size: int

    def device(self, use_gpu: bool) -> torch.device:
        """The accelerator of this rank, or the CPU."""

    def batches(self, batch_size: int, shuffle_buffer: int | None) -> Iterable[Batch]:
        """This rank's training batches for one epoch (called once per epoch)."""

    def latest_checkpoint(self) -> str | None:
        """A local directory holding the checkpoint to restore (this run's own latest), or None."""

    def release_checkpoint(self) -> None:
        """The checkpoint from `latest_checkpoint` is restored: its directory may go (e.g. a downloaded copy)."""

    def report(self, record: Report, checkpoint_dir: str | None = None) -> None:
        """Send `record`; `checkpoint_dir` (this rank's part of a checkpoint) is taken over and may be deleted."""


class RayTrainReporter:
    """Inside a Ray Train worker: `ray.train.get_context`, `get_dataset_shard("train")`, `get_checkpoint`, `report`.

    `init_checkpoint` (a checkpoint directory, e.g. a PBT donor's) is restored when the run has none of its own.
    `dataset`, when given, is iterated here instead of this worker's shard of the trainer's datasets (a single
    worker: see launch/trainer.iterates_its_own_dataset).
    """

    def __init__(self, init_checkpoint: str | None = None, dataset: Any = None):
        import ray.train

        ctx = ray.train.get_context()
        self.rank, self.world_size = ctx.get_world_rank(), ctx.get_world_size()
        self._init_checkpoint = init_checkpoint
        self._dataset = dataset
        self._restore: Any = None

    def device(self, use_gpu: bool) -> torch.device:
        if use_gpu and torch.cuda.is_available():
            import ray.train.torch

            return ray.train.torch.get_device()
        return torch.device("cpu")

    def batches(self, batch_size: int, shuffle_buffer: int | None) -> Iterable[Batch]:
        import ray.train

        shard = self._dataset if self._dataset is not None else ray.train.get_dataset_shard("train")
        return shard.iter_torch_batches(batch_size=batch_size, drop_last=True,
                                        local_shuffle_buffer_size=shuffle_buffer)

    def latest_checkpoint(self) -> str | None:
        import ray.train

        checkpoint = ray.train.get_checkpoint()  # this run's own latest first: a worker-group restart continues it
        if checkpoint is None and self._init_checkpoint:
            checkpoint = ray.train.Checkpoint(self._init_checkpoint)
        if checkpoint is None:
            return None
        self._restore = checkpoint.as_directory()
        return self._restore.__enter__()

    def report(self, record: Report, checkpoint_dir: str | None = None) -> None:
        import ray.train

        checkpoint = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(record.to_metrics(), checkpoint=checkpoint)
        if checkpoint_dir:
            shutil.rmtree(checkpoint_dir, ignore_errors=True)

    def release_checkpoint(self) -> None:
        if self._restore is not None:
            self._restore.__exit__(None, None, None)
            self._restore = None


class InProcessReporter:
    """The Trainer in this process: rank 0 of `world_size` (whatever process group is initialised, if any).

    `epochs` gives each epoch's batches: a list (the same batches every epoch), a list of lists (one per epoch) or
    a function of the epoch's index. Every report is appended to `records` (with the checkpoint directory it
    left, or None); checkpoints are kept under `root` and the newest is what a new Trainer on this reporter
    restores, as Ray Train would after a worker-group restart.
    """

    def __init__(self, epochs: Iterable[Batch] | Iterable[Iterable[Batch]] | Callable[[int], Iterable[Batch]],
                 root: str | Path | None = None, rank: int = 0, world_size: int = 1):
        self.rank, self.world_size = rank, world_size
        self._epochs = epochs if callable(epochs) else list(epochs)
        self._epoch = 0
        self.root = Path(root or tempfile.mkdtemp(prefix="dssl-inprocess-"))
        self.records: list[tuple[Report, str | None]] = []
        self.restore_from: str | None = None  # overrides the newest checkpoint when set

    def device(self, use_gpu: bool) -> torch.device:
        return torch.device("cuda") if use_gpu and torch.cuda.is_available() else torch.device("cpu")

    def batches(self, batch_size: int, shuffle_buffer: int | None) -> Iterator[Batch]:
        epoch, self._epoch = self._epoch, self._epoch + 1
        if callable(self._epochs):
            return iter(self._epochs(epoch))
        if self._epochs and not isinstance(self._epochs[0], dict):  # one list of batches per epoch
            return iter(self._epochs[min(epoch, len(self._epochs) - 1)])
        return iter(self._epochs)

    def latest_checkpoint(self) -> str | None:
        if self.restore_from is not None:
            return self.restore_from
        saved = [path for _, path in self.records if path is not None]
        return saved[-1] if saved else None

    def report(self, record: Report, checkpoint_dir: str | None = None) -> None:
        kept = None
        if checkpoint_dir:
            kept = str(self.root / f"checkpoint_{len(self.records):06d}")
            shutil.move(checkpoint_dir, kept)
        self.records.append((record, kept))

    def release_checkpoint(self) -> None:
        pass  # kept: a later Trainer on this reporter restores the newest

    def reports(self, kind: type | None = None) -> list[Report]:
        """The records sent so far (of one kind when given)."""
        return [r for r, _ in self.records if kind is None or isinstance(r, kind)]
