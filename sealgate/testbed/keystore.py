"""Run a real keystore (`sealgate keystore serve`) in a work directory: tests, benchmarks, the demo.

Everything lives under the directory: config, database, master key, socket.
The directory is made traversable by others so tests can connect as
another user and see the socket's own permissions decide.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

from sealgate.keystore.client import KeystoreClient
from sealgate.keystore.errors import KeystoreUnavailable
from sealgate.testbed.milter import write_config
from sealgate.testbed.ports import free_port
from sealgate.testbed.process import Daemon


class KeystoreProcess(Daemon):
    name = "sealgate keystore"

    def __init__(self, workdir: Path, zone_files: Sequence[Path] = (), now: str | None = None,
                 directory: bool = True, **keystore: Any) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        os.chmod(workdir, 0o711)
        self.socket_path = workdir / "keystore.sock"
        self.port = free_port() if directory else 0
        self.env = {**os.environ, "SEALGATE_KEYSTORE_NOW": now} if now else dict(os.environ)
        self.env.pop("CREDENTIALS_DIRECTORY", None)
        settings = {"socket": str(self.socket_path), "database": str(workdir / "keystore.db"),
                    "master_key_file": str(workdir / "master.key"),
                    "directory_listen": f"127.0.0.1:{self.port}" if directory else "",
                    "public_url": f"http://127.0.0.1:{self.port}", **keystore}
        self.config = write_config(workdir / "sealgate.conf", {
            "keystore": settings, "log": {"level": "debug"},
            "dns": {"backend": "zone", "zone_files": [str(p) for p in zone_files]}})
        super().__init__(workdir / "keystore.log", self.env)

    def run(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`sealgate ARGS --config FILE` with this instance's clock."""
        done = subprocess.run([sys.executable, "-m", "sealgate", *args, "--config", str(self.config)],
                              input=input, capture_output=True, text=True, env=self.env, timeout=60,
                              check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"sealgate {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
        return done

    def command(self) -> list[str]:
        return [sys.executable, "-m", "sealgate", "keystore", "serve", "--config", str(self.config)]

    def ready(self) -> bool:
        with KeystoreClient(self.socket_path, timeout=1) as client:
            try:
                client.ping()
            except KeystoreUnavailable:
                return False
        return True

    def client(self, timeout: float = 2.0) -> KeystoreClient:
        return KeystoreClient(self.socket_path, timeout)
