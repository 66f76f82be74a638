"""The driver's console: progress lines without a terminal, eval lines, and which log records reach the screen.

The end-to-end checks (a real run's captured output holds no Ray/DeepSpeed/torch internals, `-v` brings them back)
sit with the runs that already happen as subprocesses: tests/test_retrain.py and tests/test_cluster_storage.py.
"""

from __future__ import annotations

import io
import logging

import pytest

from distributed_ssl.engine.progress import EvalProgress, NoteProgress, StepProgress, from_wire, to_wire
from distributed_ssl.launch import console as console_module
from distributed_ssl.launch.console import ConsoleFilter, RunConsole


def _step(step: int, total: int = 40) -> StepProgress:
    return StepProgress(step, total, epoch=(step - 1) // 10, epochs=4, loss=5.0 - step / 10, samples_per_s=200.0,
                        input_wait_fraction=0.02)


def test_plain_lines_are_throttled_and_the_last_step_is_always_shown():
    out = io.StringIO()
    shown = RunConsole(label="demo", stream=out, interactive=False, interval_s=3600)
    for step in range(2, 41, 2):
        shown.show(_step(step))
    shown.show(EvalProgress(1, 10, 0.61, 0.90, 0.55, 0.88, None))
    shown.show(NoteProgress("input wait 30% of the last window"))
    lines = out.getvalue().splitlines()
    # the first window, then nothing until the last step (the interval is an hour), then the eval and the note
    assert lines[0] == "demo step 2/40 epoch 1/4 loss 4.8000 200 samples/s input wait 2%"
    assert lines[1].startswith("demo step 40/40 epoch 4/4")
    assert lines[2] == "epoch 1 (step 10): kNN 0.610, linear 0.900  (random init 0.550 / 0.880)"
    assert lines[3] == "warning: input wait 30% of the last window"
    assert len(lines) == 4


def test_events_survive_the_trip_through_the_board():
    for event in (_step(3), EvalProgress(2, 20, None, 0.5, 0.1, None, "collapse"), NoteProgress("x")):
        assert from_wire(to_wire(event)) == event


def test_runs_of_one_driver_share_a_board_and_a_late_event_never_reaches_the_next_run(ray_cluster):
    import ray

    first_out, second_out = io.StringIO(), io.StringIO()
    with RunConsole(label="first", stream=first_out, interactive=False) as first:
        first.board.post.remote(to_wire(_step(2)))
    ray.get(first.board.post.remote(to_wire(NoteProgress("late, from the first run"))))  # e.g. a worker cut off
    with RunConsole(label="second", stream=second_out, interactive=False) as second:
        second.board.post.remote(to_wire(_step(4)))
    assert second.board._actor_id == first.board._actor_id  # one process for both runs
    assert "first step 2/40" in first_out.getvalue()
    assert second_out.getvalue().splitlines() == ["second step 4/40 epoch 1/4 loss 4.6000 200 samples/s input wait 2%"]


@pytest.mark.parametrize("verbose", [False, True])
def test_console_shows_our_records_and_only_errors_of_other_libraries(verbose, monkeypatch):
    monkeypatch.setattr(console_module, "_verbose", verbose)
    keep = ConsoleFilter().filter

    def record(name: str, level: int) -> logging.LogRecord:
        return logging.LogRecord(name, level, __file__, 1, "m", None, None)

    assert keep(record("distributed_ssl.train", logging.INFO))
    assert keep(record("ray.data", logging.ERROR))
    assert keep(record("ray.train", logging.INFO)) is verbose
    assert keep(record("py.warnings", logging.WARNING)) is verbose  # torch's FutureWarnings: the log file only


@pytest.mark.parametrize("verbose", [False, True])
def test_raylet_notices_go_to_the_log_file_unless_verbose(verbose, monkeypatch, capsys, caplog):
    import ray._private.worker as ray_worker

    monkeypatch.setattr(ray_worker, "print_to_stdstream", ray_worker.print_to_stdstream)  # undone after the test
    monkeypatch.setattr(console_module, "_configured", True)
    monkeypatch.setattr(console_module, "_verbose", verbose)
    console_module.route_library_logs()
    notice = "WARNING: 7 PYTHON worker processes have been started on node: abc"
    with caplog.at_level(logging.WARNING, logger="ray.raylet"):
        ray_worker.print_to_stdstream({"lines": [notice], "pid": "raylet", "is_err": False}, ignore_prefix=False)
    printed = capsys.readouterr().out
    assert (notice in printed) is verbose
    assert any(r.name == "ray.raylet" and notice in r.getMessage() for r in caplog.records) is not verbose
