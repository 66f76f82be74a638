"""The Ray Data batch function: records → decoded, augmented views and masks, in one vectorised pass."""

from __future__ import annotations

import numpy as np
import torch

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.data.bad_records import report_bad, split_good_bad
from distributed_ssl.modalities.base import Modality
from distributed_ssl.modalities.registry import get_modality
from distributed_ssl.modalities.view_spec import ViewSpec


def make_views_batch(batch: dict[str, np.ndarray], cfg: SSLConfig, spec: ViewSpec,
                     seed: int | None = None, ledger: str | None = None,
                     modality: Modality | None = None) -> dict[str, np.ndarray]:
    """Decode a batch and return `view_i` arrays (+ `mask`, + `label` when present).

    `cfg` is the validated config and `modality` the modality object, both made once by the caller (the Ray Data
    step gets them in its partial, so no batch validates a config again); without `modality` it is looked up.
    Without a seed each call draws fresh randomness, so every epoch sees new augmentations. Records that fail
    to decode are dropped and reported to the run's bad-record `ledger` (see data/bad_records.py).
    """
    config = cfg
    modality = modality or get_modality(config.modality.name)
    torch.set_num_threads(1)
    gen = torch.Generator()
    gen.manual_seed(int(seed) if seed is not None else int(np.random.SeedSequence().entropy % (2**63)))
    try:
        raw = modality.decode(batch, config)
    except Exception:
        good, bad = split_good_bad(lambda b: modality.decode(b, config), batch)
        report_bad(ledger, bad)
        batch = {k: np.asarray(v)[good] for k, v in batch.items()}
        raw = modality.decode(batch, config)
    out = modality.make_views(raw, spec, config, gen)
    if "label" in batch:
        out["label"] = np.asarray(batch["label"])
    return out
