"""Build the keystore's parts from the loaded configuration: one place, used by the service and the CLI."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from sealgate.config import Config, ConfigError
from sealgate.dns import Resolver, make_resolver
from sealgate.keystore.db import Database
from sealgate.keystore.lifecycle import Schedule
from sealgate.keystore.masterkey import (
    Sealer,
    create_master_key,
    load_master_key,
    master_key_path,
)
from sealgate.keystore.store import KeyStore


def open_store(config: Config, with_master_key: bool, create_key: bool = False) -> KeyStore:
    """The key store; the master key is loaded (and with `create_key` created if absent) when needed."""
    sealer = None
    if with_master_key:
        path = master_key_path(config.keystore)
        if create_key and not path.exists():
            create_master_key(path)
            print(f"sealgate: created master key file {path} (mode 0600); back it up "
                  f"apart from the database", file=sys.stderr)
        sealer = Sealer(load_master_key(path))
    return KeyStore(Database(Path(config.keystore.database)), sealer)


def schedule(config: Config) -> Schedule:
    return Schedule.from_config(config.keystore)


def resolver(config: Config) -> Resolver:
    try:
        return make_resolver(config.dns)
    except ValueError as exc:  # an unreadable or malformed zone file
        raise ConfigError(f"{config.source}: [dns] zone_files: {exc}") from None


def public_base_url(config: Config) -> str:
    """Where others reach our directory: [keystore] public_url, or https://<this host>."""
    return (config.keystore.public_url or f"https://{socket.getfqdn()}").rstrip("/")
