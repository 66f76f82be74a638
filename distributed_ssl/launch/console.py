"""The driver's console: one progress bar per run, one line per eval epoch, our warnings; nothing else.

Ray's, DeepSpeed's and torch's own output is for debugging, not for following a run: without `-v` workers'
output stays out of the console (`ray.init(log_to_driver=False)`, see ray_runtime.py) and every library's log
records go to the run's log file (RUN_DIR/logs/driver.log, see run_logs.py) instead of the screen. On a terminal
the bar redraws in place (tqdm); without one (CI, `ray job logs`) it becomes a plain line at most every
`interval_s`, plus the last step.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import IO, Any

from distributed_ssl.engine.progress import (
    EvalProgress,
    NoteProgress,
    StepProgress,
    from_wire,
    shared_board,
)

log = logging.getLogger("distributed_ssl.console")
OURS = "distributed_ssl"
_verbose = False


def set_verbose(verbose: bool) -> None:
    """`-v`: workers' output and every library's log lines come back to the console."""
    global _verbose
    _verbose = verbose


def is_verbose() -> bool:
    return _verbose


class ConsoleFilter(logging.Filter):
    """Our own records at INFO and above; another library's only from ERROR up (they are all in the log file)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _verbose:
            return True
        return record.name.startswith(OURS) or record.levelno >= logging.ERROR


LIBRARY_LOGGERS = ("ray", "mlflow", "DeepSpeed", "torch", "alembic", "urllib3", "filelock")
_configured = False


def configure_console_logging(verbose: bool) -> None:
    """Console handler with ConsoleFilter; warnings.warn goes through logging, so torch's and Ray's
    FutureWarnings land in the log file rather than on the screen. Called once by the CLI."""
    global _configured
    set_verbose(verbose)
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    for old in [h for h in root.handlers if isinstance(h, ConsoleHandler)]:  # one, however often main() runs
        root.removeHandler(old)
    handler = ConsoleHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    handler.addFilter(ConsoleFilter())
    root.addHandler(handler)
    logging.captureWarnings(True)
    _configured = True
    route_library_logs()


class ConsoleHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is at the time of the record (it may be replaced after set-up)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, _value: IO[str]) -> None:
        pass


def route_library_logs() -> None:
    """Ray and MLflow give their loggers console handlers of their own (and stop them propagating) when they are
    imported: send their records through the root instead, to the log file always and to the console per
    ConsoleFilter. Called again once they are imported; does nothing outside the CLI (e.g. under pytest)."""
    if not _configured or _verbose:
        return
    for name in LIBRARY_LOGGERS:
        lib = logging.getLogger(name)
        lib.propagate = True
        for h in list(lib.handlers):
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                lib.removeHandler(h)
    _route_raylet_messages()


def _route_raylet_messages() -> None:
    """The raylet's notices (e.g. "N PYTHON worker processes have been started") reach the driver outside logging:
    Ray's error listener prints them straight to stdout. Send them to the `ray.raylet` logger instead, i.e. to the
    log file, and to the console only when they are errors of ours to see (ConsoleFilter)."""
    worker = sys.modules.get("ray._private.worker")
    if worker is None or getattr(worker.print_to_stdstream, "routed_to_log", False):
        return
    printed = worker.print_to_stdstream

    def print_or_log(data: dict, ignore_prefix: bool) -> None:
        if data.get("pid") != "raylet" or _verbose:
            printed(data, ignore_prefix=ignore_prefix)
            return
        for line in data.get("lines", []):
            logging.getLogger("ray.raylet").warning("%s", line)

    print_or_log.routed_to_log = True  # type: ignore[attr-defined]
    worker.print_to_stdstream = print_or_log


def _fmt(value: float | None, pattern: str = "{:.3f}") -> str:
    return "-" if value is None else pattern.format(value)


def eval_line(event: EvalProgress) -> str:
    line = (f"epoch {event.epoch} (step {event.step}): kNN {_fmt(event.knn_top1)}, linear {_fmt(event.linear_top1)}"
            f"  (random init {_fmt(event.knn_top1_random_init)} / {_fmt(event.linear_top1_random_init)})")
    return line + (f"  warning: {event.collapse_warning}" if event.collapse_warning else "")


def step_text(event: StepProgress) -> str:
    return (f"epoch {event.epoch + 1}/{event.epochs} loss {event.loss:.4f} {event.samples_per_s:.0f} samples/s "
            f"input wait {100 * event.input_wait_fraction:.0f}%")


class RunConsole:
    """Shows one run's progress events as they arrive; a context manager around `trainer.fit()`."""

    def __init__(self, label: str = "train", stream: IO[str] | None = None, interactive: bool | None = None,
                 interval_s: float = 15.0, poll_s: float = 0.5):
        self.label, self.stream = label, stream or sys.stdout
        self.interactive = (self.stream.isatty() and not _verbose) if interactive is None else interactive
        self.interval_s, self.poll_s = interval_s, poll_s
        self.board: Any = None
        self._bar: Any = None
        self._last_line = float("-inf")  # the first step is always shown
        self._last_step: StepProgress | None = None
        self._printed_step = -1
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> RunConsole:
        self.board = shared_board()
        self._thread = threading.Thread(target=self._poll, name="dssl-console", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._drain()
        last = self._last_step
        if last is not None and not self.interactive and self._printed_step != last.step:
            self._print(self._plain(last))
        if self._bar is not None:
            self._bar.close()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            self._drain()

    def _drain(self) -> None:
        import ray

        try:
            events = ray.get(self.board.drain.remote(), timeout=10)
        except Exception:  # a console that cannot update must never stop the run
            return
        for wire in events:
            self.show(from_wire(wire))

    def show(self, event: StepProgress | EvalProgress | NoteProgress) -> None:
        if isinstance(event, StepProgress):
            self._show_step(event)
        elif isinstance(event, EvalProgress):
            self._print(eval_line(event))
        else:
            self._print(f"warning: {event.text}")

    def _plain(self, event: StepProgress) -> str:
        return f"{self.label} step {event.step}/{event.total_steps} {step_text(event)}"

    def _show_step(self, event: StepProgress) -> None:
        self._last_step = event
        if self.interactive:
            from tqdm import tqdm

            if self._bar is None:
                self._bar = tqdm(total=event.total_steps, desc=self.label, unit="step", file=self.stream,
                                 dynamic_ncols=True)
            self._bar.n = event.step
            self._bar.set_postfix_str(step_text(event), refresh=True)
            return
        now = time.monotonic()
        if now - self._last_line >= self.interval_s or event.step == event.total_steps:
            self._print(self._plain(event))
            self._last_line, self._printed_step = now, event.step

    def _print(self, text: str) -> None:
        if self._bar is not None:
            self._bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)
