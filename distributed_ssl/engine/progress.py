"""What the person at the console sees of a run: rank 0 posts progress events, the driver shows them.

Workers' own output (Ray's, DeepSpeed's, torch's) stays out of the driver's console unless asked for (`-v`,
see launch/console.py), so the few things a person follows — step, loss, speed, input wait, each eval epoch —
travel as events through a small actor instead: `ProgressBoard`, created by the driver and handed to rank 0.
Posting is fire-and-forget, so a slow console never slows training.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import ray


@dataclass(frozen=True)
class StepProgress:
    """One logging window of training (values averaged over ranks, samples/s summed)."""

    step: int
    total_steps: int
    epoch: int
    epochs: int
    loss: float
    samples_per_s: float
    input_wait_fraction: float


@dataclass(frozen=True)
class EvalProgress:
    """One eval epoch's probes beside the random-init baseline; absent values are None."""

    epoch: int
    step: int
    knn_top1: float | None
    linear_top1: float | None
    knn_top1_random_init: float | None
    linear_top1_random_init: float | None
    collapse_warning: str | None = None


@dataclass(frozen=True)
class NoteProgress:
    """A warning of ours raised on a worker (e.g. input wait above 10 %) that the person should see."""

    text: str


Event = StepProgress | EvalProgress | NoteProgress
_KINDS = {cls.__name__: cls for cls in (StepProgress, EvalProgress, NoteProgress)}


def to_wire(event: Event) -> dict[str, Any]:
    return {"kind": type(event).__name__, **asdict(event)}


def from_wire(data: dict[str, Any]) -> Event:
    fields = dict(data)
    return _KINDS[fields.pop("kind")](**fields)


@ray.remote(num_cpus=0)
class ProgressBoard:
    """Holds posted events until the driver drains them (a few per logging window: tiny)."""

    def __init__(self) -> None:
        self._events: list[dict[str, Any]] = []

    def post(self, event: dict[str, Any]) -> None:
        self._events.append(event)

    def drain(self) -> list[dict[str, Any]]:
        events, self._events = self._events, []
        return events


_shared_board: tuple[str, Any] | None = None  # (the Ray job it belongs to, the board)


def shared_board() -> Any:
    """This driver's board, made by its first run and reused by the next (retraining passes, a test session):
    an actor is a process of its own, about 0.6 CPU-s to start. A reused board is emptied first (a run cut off
    may have left events); a new `ray.init` is a new job, whose first run makes a new board."""
    global _shared_board
    job = ray.get_runtime_context().get_job_id()
    if _shared_board is not None and _shared_board[0] == job:
        try:
            ray.get(_shared_board[1].drain.remote(), timeout=10)
            return _shared_board[1]
        except (ray.exceptions.RayError, TimeoutError):  # it died: the next one replaces it
            pass
    _shared_board = (job, ProgressBoard.remote())
    return _shared_board[1]


class ProgressSender:
    """The worker side: posts events to the driver's board; a run without a board (tests, a sweep trial that
    shows no bar) posts nothing."""

    def __init__(self, board: Any | None):
        self._board = board

    def post(self, event: Event) -> None:
        if self._board is not None:
            self._board.post.remote(to_wire(event))
