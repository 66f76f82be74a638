"""The callable Ray Data's map_batches runs on every batch of records: decode, augment, mask.

Ray hands a Dataset's plan, this callable with it, to coordinator actors that unpickle it and never call it: Ray
Train's DatasetManager and the streaming split's SplitCoordinator, two fresh processes in every run. A callable
holding a built modality would make each of them import torch and every modality (2-4 s of CPU each, on the
critical path of every run's start). This one holds the run's config and the view spec, both plain data, and
builds the modality from them on its first call, in the process that runs the batches.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from distributed_ssl.config.schema import SSLConfig
from distributed_ssl.data.bad_records import LedgerAddress
from distributed_ssl.modalities.view_spec import ViewSpec


@dataclass
class ViewsTask:
    """`make_views_batch` of `cfg`'s modality, for `spec`, reporting bad records to `ledger` (see bad_records.py)."""

    cfg: SSLConfig
    spec: ViewSpec
    ledger: LedgerAddress | None = None
    _modality: Any = field(default=None, init=False, repr=False, compare=False)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from distributed_ssl.modalities.preprocess import make_views_batch
        from distributed_ssl.modalities.registry import build_modality

        if self._modality is None:
            self._modality = build_modality(self.cfg)
        return make_views_batch(batch, self._modality, self.spec, ledger=self.ledger)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_modality": None}  # rebuilt where it is called, never shipped
