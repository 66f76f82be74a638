"""The data pipeline starts while the Trainer sets up: the first batch is fetched early, the rest on demand, and
one pass of the iterator covers a locally shuffled run (a full shuffle keeps passes short)."""

from __future__ import annotations

import time

import pytest

from distributed_ssl.config import load_config
from distributed_ssl.data.manifest import load_manifest
from distributed_ssl.engine.early_start import EarlyStart
from distributed_ssl.launch.trainer import epochs_per_pass


def _slow(items: list[int], first_delay: float):
    for i, item in enumerate(items):
        if i == 0:
            time.sleep(first_delay)
        yield item


def test_first_item_is_fetched_before_it_is_asked_for():
    items = EarlyStart(_slow([1, 2, 3], first_delay=0.5))
    time.sleep(0.7)  # the set-up the first batch's fetch overlaps
    t0 = time.perf_counter()
    assert next(items) == 1
    assert time.perf_counter() - t0 < 0.2
    assert list(items) == [2, 3]


def test_an_empty_iterator_and_an_error_reach_the_consumer():
    assert list(EarlyStart(iter([]))) == []

    def broken():
        raise RuntimeError("pipeline failed to start")
        yield

    items = EarlyStart(broken())
    with pytest.raises(RuntimeError, match="pipeline failed to start"):
        next(items)


@pytest.mark.parametrize(("shuffle", "expected"), [("local", 16), ("none", 16), ("full", 4)])
def test_a_cached_set_shuffled_locally_is_one_pass_for_the_run(digits, shuffle, expected):
    cfg = load_config(None, [f"data.train={digits / 'train'}", f"data.shuffle={shuffle}"])
    manifest = load_manifest(str(digits / "train"))
    # make demo's plan: 11 optimizer steps an epoch, 16 epochs
    assert epochs_per_pass(cfg, manifest, (11, 176)) == expected
