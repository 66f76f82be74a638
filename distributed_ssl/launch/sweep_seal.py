"""The seal over a sweep's Ray Tune state: `dssl tune --resume` unpickles only what this sweep's Tune wrote.

`tune.Tuner.restore` unpickles `tuner.pkl`, the searcher's `searcher-state-*.pkl`, trials' `params.pkl` /
`error.pkl`, and cloudpickle blobs that Tune embeds in its JSON (`experiment_state-*.json`, `result.json`):
anyone who can write the sweep dir could otherwise run code on the next resume. So dssl records the sha256 of
every such file as Tune writes it, and `--resume` refuses a sweep dir unless each of them matches a recorded
hash (with `DSSL_CHECKPOINT_KEY` set, the seal must also carry a valid HMAC under that key).

Tune writes its state into a local staging directory on the driver and copies it to `run.dir/tune/` in the
background. `SweepSealCallback` hashes the staging copy (never the shared one, where a planted file would be
sealed along) when Tune saves (`get_state` is called inside that save, before the copy starts) and at every
step, and keeps every hash it saw per file: a driver killed mid-copy leaves files that each match some
recorded version. `tuner.pkl`, which Tune writes straight to `run.dir/tune/` before the sweep starts, is sealed
right after that. Trial checkpoints under `tune/` are DeepSpeed checkpoints with their own manifests
(engine/checkpoint_manifest.py), checked when a trial loads one; CSV and event files are never unpickled.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ray import tune

from distributed_ssl.engine.checkpoint_manifest import manifest_name
from distributed_ssl.engine.file_manifest import ManifestError, read_manifest, sha256_file, sign, signing_key
from distributed_ssl.util.atomic_files import atomic_write_text

SEAL_FILE = "tune_state_seal.json"
SEAL_KIND = "dssl-sweep-state"
TUNER_FILE = "tuner.pkl"
# Files Tune (or a planted copy) could deserialize with pickle: these must be sealed; others are plain data.
PICKLE_BEARING_SUFFIXES = {".pkl", ".pickle", ".json", ".pt", ".pth", ".bin"}
UNREAD_MARKERS = {".validate_storage_marker"}  # empty; Tune checks only that it exists
KEEP_HASHES = 64  # versions kept per file (result.json changes at every report)


def _sealable(root: Path) -> list[str]:
    """Relative paths of the pickle-bearing files under `root`, outside dssl checkpoint directories."""
    out = []
    for path in root.rglob("*"):
        if not (path.is_file() or path.is_symlink()) or path.name in UNREAD_MARKERS:
            continue
        if path.suffix.lower() not in PICKLE_BEARING_SUFFIXES:
            continue
        if any((parent / manifest_name(0)).is_file() for parent in path.parents if root in parent.parents):
            continue  # inside a dssl checkpoint: verified by verify_checkpoint when loaded
        out.append(path.relative_to(root).as_posix())
    return sorted(out)


class SweepSeal:
    """The recorded hashes of one sweep's Tune state, kept in `SWEEP_DIR/tune_state_seal.json`."""

    def __init__(self, sweep_dir: str | Path, files: dict[str, list[str]] | None = None):
        self.path = Path(sweep_dir) / SEAL_FILE
        self.files: dict[str, list[str]] = files or {}

    @classmethod
    def load(cls, sweep_dir: str | Path) -> SweepSeal:
        """The sweep's seal, its signature checked; `ManifestError` when it is missing or does not verify."""
        path = Path(sweep_dir) / SEAL_FILE
        where = f"sweep {sweep_dir}"
        if not path.is_file():
            raise ManifestError(f"{where}: no {SEAL_FILE}, so nothing vouches for its Tune state (a sweep of an "
                                "older dssl, or files not written by dssl): refusing `--resume`, which would "
                                "unpickle them; start the sweep again in a fresh run.dir")
        seal = read_manifest(path, where)
        if seal.get("kind") != SEAL_KIND:
            raise ManifestError(f"{where}: {SEAL_FILE} is not a sweep seal (kind {seal.get('kind')!r})")
        return cls(sweep_dir, {k: list(v) for k, v in seal["files"].items()})

    def add(self, root: Path, names: list[str]) -> bool:
        """Record the current hash of each file `names` (relative to `root`); True when anything was new."""
        changed = False
        for name in names:
            try:
                digest = sha256_file(root / name)
            except OSError:  # removed while we looked (Tune replaces files atomically)
                continue
            known = self.files.setdefault(name, [])
            if digest not in known:
                known.append(digest)
                del known[:-KEEP_HASHES]
                changed = True
        return changed

    def save(self) -> None:
        seal = sign({"format": 1, "kind": SEAL_KIND, "files": self.files}, signing_key())
        atomic_write_text(self.path, json.dumps(seal, indent=1, sort_keys=True))

    def verify(self, tune_dir: Path) -> None:
        """Raise `ManifestError` naming the first pickle-bearing file under `tune_dir` the seal does not vouch for."""
        where = f"sweep {self.path.parent}"
        for name in _sealable(tune_dir):
            if name not in self.files:
                raise ManifestError(f"{where}: tune/{name} is not in {SEAL_FILE} (not written by this sweep's "
                                    "Tune): refusing `--resume`, which would unpickle it")
            if sha256_file(tune_dir / name) not in self.files[name]:
                raise ManifestError(f"{where}: tune/{name} does not match any version this sweep's Tune wrote "
                                    f"({SEAL_FILE}): refusing `--resume`, which would unpickle it")


def seal_tuner_file(sweep_dir: str | Path, tune_dir: str | Path, resume: bool) -> SweepSeal:
    """Start (or, resuming, continue) the seal with `tuner.pkl`, which Tune writes into `tune_dir` itself."""
    seal = SweepSeal.load(sweep_dir) if resume else SweepSeal(sweep_dir)
    if Path(tune_dir, TUNER_FILE).is_file():
        seal.add(Path(tune_dir), [TUNER_FILE])
    seal.save()
    return seal


def verify_sweep_state(sweep_dir: str | Path, tune_dir: str | Path) -> None:
    """Before `Tuner.restore`: every pickle-bearing file of the sweep's Tune state matches its seal."""
    SweepSeal.load(sweep_dir).verify(Path(tune_dir))


class SweepSealCallback(tune.Callback):
    """Seals Tune's staging copy of the experiment state whenever it may have changed (see module doc).

    Tune pickles its callbacks into `tuner.pkl` and a resumed sweep runs that copy, so it holds only the sweep
    dir and reads the seal from disk when the experiment starts.
    """

    def __init__(self, sweep_dir: str | Path):
        self.sweep_dir = str(sweep_dir)
        self.seal: SweepSeal | None = None
        self.staging: Path | None = None
        self._seen: dict[str, tuple[int, int]] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"sweep_dir": self.sweep_dir}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["sweep_dir"])

    def setup(self, **info: Any) -> None:
        self.seal = SweepSeal.load(self.sweep_dir)  # written by seal_tuner_file before `fit`

    def _seal_staging(self) -> None:
        if self.seal is None or self.staging is None or not self.staging.is_dir():
            return
        names = _sealable(self.staging)
        stats = {}
        for name in names:
            try:
                st = (self.staging / name).stat()
            except OSError:
                continue
            stats[name] = (st.st_size, st.st_mtime_ns)
        fresh = [n for n, s in stats.items() if self._seen.get(n) != s]
        self._seen.update(stats)
        if fresh and self.seal.add(self.staging, fresh):
            self.seal.save()

    def _find_staging(self, trials: list) -> None:
        """The staging directory is known only through a trial's storage context."""
        if self.staging is None and trials:
            self.staging = Path(trials[0].storage.experiment_driver_staging_path)

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        self._find_staging(trials)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._find_staging(trials)
        self._seal_staging()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._find_staging(trials)  # a resumed sweep whose trials all finished takes no step
        self._seal_staging()

    def get_state(self) -> dict | None:
        """Called inside Tune's save, after the experiment and searcher state are written, before they are
        copied to storage: the moment to seal them. Returns None: this callback keeps no state of its own."""
        self._seal_staging()
        return None
