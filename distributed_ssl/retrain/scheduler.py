"""`dssl retrain --every 6h`: run passes on a fixed period, in the foreground, until stopped.

The period is measured start to start, so a long pass does not push every later one back; a pass that
overruns the period simply makes the next one start at once. A failing pass is logged and the loop goes on:
the next pass may find the cause gone (a tracking server back up, a corrupt shard replaced). The config file is
re-read before each pass, so edits take effect without restarting the scheduler.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.retrain.retrain_pass import PassResult, run_pass

log = logging.getLogger("distributed_ssl.retrain")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_period(text: str) -> float:
    """'90s', '15m', '6h', '1d' (or a plain number of seconds) → seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"--every {text!r}: expected a positive duration such as 30m, 6h or 1d")
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


def run_every(load_cfg: Callable[[], SSLConfig], period_s: float, max_passes: int | None = None,
              on_result: Callable[[PassResult], None] | None = None,
              sleep: Callable[[float], None] = time.sleep) -> int:
    """Run passes every `period_s` seconds (forever, or `max_passes` times); returns the number run."""
    done = 0
    while max_passes is None or done < max_passes:
        started = time.monotonic()
        try:
            result = run_pass(load_cfg())
        except Exception as exc:  # keep the schedule alive; run_pass already logged the failure to history
            log.exception("retrain pass failed: %s", exc)
            result = PassResult("failed", f"{type(exc).__name__}: {exc}")
        if on_result is not None:
            on_result(result)
        done += 1
        if max_passes is not None and done >= max_passes:
            break
        sleep(max(0.0, period_s - (time.monotonic() - started)))
    return done
