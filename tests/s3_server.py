"""A real S3 API on loopback (moto's server mode) and a "node" Python that cannot import distributed_ssl.

The S3 server is what every cluster test stores data, run dirs and checkpoints on; the `AWS_*` variables are
exported before any Ray node starts, so every node inherits them, as a cloud instance's environment would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.mlflow_server import free_port, wait_for_http

# Dummy credentials: moto accepts any. The instance-metadata lookup is off, so nothing leaves loopback.
AWS_ENV = {"AWS_ACCESS_KEY_ID": "dssl-test", "AWS_SECRET_ACCESS_KEY": "dssl-test-secret",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


class S3Server:
    """`moto.server` on 127.0.0.1 at a free port; `stop()` kills its process group."""

    def __init__(self, root: Path):
        self.root, self.port = root, free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**AWS_ENV, "AWS_ENDPOINT_URL": self.endpoint}

    def start(self, timeout_s: float = 60) -> None:
        log = open(self.root / "moto.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_for_http(self.proc, f"{self.endpoint}/moto-api/", self.root / "moto.log", timeout_s, "moto server")

    def create_bucket(self, name: str) -> None:
        import pyarrow.fs as pafs

        fs = pafs.S3FileSystem(endpoint_override=self.endpoint, allow_bucket_creation=True,
                               access_key=AWS_ENV["AWS_ACCESS_KEY_ID"], secret_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
                               region=AWS_ENV["AWS_DEFAULT_REGION"])
        fs.create_dir(name)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


def python_without_package(root: Path) -> str:
    """A venv whose interpreter sees this venv's packages but not the editable distributed_ssl install.

    Its one .pth file adds our site-packages as a plain path, so the .pth files there (the editable finder among
    them) are not run: `import distributed_ssl` fails unless a job ships the package.
    """
    env_dir = root / "node-venv"
    if not (env_dir / "bin" / "python").exists():
        subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
        site = subprocess.run([str(env_dir / "bin" / "python"), "-c", "import sysconfig; "
                               "print(sysconfig.get_paths()['purelib'])"], check=True, capture_output=True,
                              text=True).stdout.strip()
        Path(site, "dssl_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = str(env_dir / "bin" / "python")
    check = subprocess.run([python, "-c", "import ray, torch, deepspeed, mlflow; import distributed_ssl"],
                           capture_output=True, text=True, cwd="/")
    if "No module named 'distributed_ssl'" not in check.stderr:
        raise RuntimeError(f"the node venv must have every dependency but not distributed_ssl: {check.stderr[-800:]}")
    return python
