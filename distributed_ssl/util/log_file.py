"""A process's log records in a file of its own, kept with the run (RUN_DIR/logs/NAME) when the run ends.

Both sides use it: the driver (every library's records, which the console leaves out) and each training worker
(Ray's, DeepSpeed's, torch's and our records on that process). Written to a local temporary file while the run
goes on, since RUN_DIR may be object storage, and copied there at the end, also when the run fails.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

LOGS_DIR = "logs"
FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d]: %(message)s"


class LogFile:
    """A FileHandler on the root logger (and on loggers that do not propagate, such as DeepSpeed's)."""

    def __init__(self, name: str, level: int = logging.INFO, extra_loggers: tuple[str, ...] = ("DeepSpeed",)):
        self.name = name
        folder = tempfile.mkdtemp(prefix="dssl-logs-")
        self.path = Path(folder, name)
        self._handler = logging.FileHandler(self.path, encoding="utf-8")
        self._handler.setLevel(level)
        self._handler.setFormatter(logging.Formatter(FORMAT))
        self._loggers = [logging.getLogger(), *(logging.getLogger(n) for n in extra_loggers)]
        for logger in self._loggers:  # the loggers' own levels stay (the root's is set by whoever configures it)
            logger.addHandler(self._handler)
        logging.captureWarnings(True)  # warnings.warn (torch's FutureWarnings) as records, into this file

    def close(self) -> Path:
        """Stop writing; returns the file."""
        for logger in self._loggers:
            logger.removeHandler(self._handler)
        self._handler.close()
        return self.path

    def save_to(self, run_dir) -> str | None:
        """Copy the file to RUN_DIR/logs/NAME (a `RunDir`); returns its URI, None if the copy failed."""
        self._handler.flush()
        try:
            return run_dir.upload(self.path, f"{LOGS_DIR}/{self.name}")
        except OSError as exc:
            logging.getLogger("distributed_ssl").warning("could not keep %s in %s: %s", self.name, run_dir, exc)
            return None

    def discard(self) -> None:
        self.close()
        try:
            os.remove(self.path)
            os.rmdir(self.path.parent)
        except OSError:
            pass
