"""The Ray Data batch function: records → decoded, augmented views and masks, in one vectorised pass."""

from __future__ import annotations

import numpy as np
import torch

from distributed_ssl.data.bad_records import LedgerAddress, report_bad, split_good_bad
from distributed_ssl.modalities.base import Modality
from distributed_ssl.modalities.view_spec import ViewSpec


def make_views_batch(batch: dict[str, np.ndarray], modality: Modality, spec: ViewSpec,
                     seed: int | None = None, ledger: LedgerAddress | None = None) -> dict[str, np.ndarray]:
    """Decode a batch and return `view_i` arrays (+ `mask`, + `label` when present).

    `modality` is built once by the caller from its config sections (`build_modality`); the Ray Data step gets it
    in its partial, so no batch looks at a config again. Without a seed each call draws fresh randomness, so every
    epoch sees new augmentations. Records that fail to decode are dropped and reported to the run's bad-record
    `ledger` (see data/bad_records.py).
    """
    torch.set_num_threads(1)
    gen = torch.Generator()
    gen.manual_seed(int(seed) if seed is not None else int(np.random.SeedSequence().entropy % (2**63)))
    try:
        raw = modality.decode(batch)
    except Exception:
        good, bad = split_good_bad(modality.decode, batch)
        report_bad(ledger, bad)
        batch = {k: np.asarray(v)[good] for k, v in batch.items()}
        raw = modality.decode(batch)
    out = modality.make_views(raw, spec, gen)
    if "label" in batch:
        out["label"] = np.asarray(batch["label"])
    return out
