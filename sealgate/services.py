"""Build the shared services (resolver, keystore client) from a configuration, and again on
SIGHUP."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from sealgate.config import Config, ConfigError, load
from sealgate.dns import make_resolver
from sealgate.keystore.cached import CachingKeystoreClient
from sealgate.logsetup import configure_logging
from sealgate.pipeline import Services

log = logging.getLogger("sealgate")


def build(config: Config) -> Services:
    try:
        resolver = make_resolver(config.dns)
    except ValueError as exc:  # an unreadable or malformed zone file
        raise ConfigError(f"{config.source}: [dns] zone_files: {exc}") from None
    keys = CachingKeystoreClient(config.keystore.socket, config.keystore.timeout) \
        if config.milter.use_keystore else None
    return Services(config=config, resolver=resolver, keys=keys)


def reload(config_path: Path | None, running: Config, restart_keys: tuple[str, ...],
           apply: Callable[[Services], None]) -> None:
    """SIGHUP: hand new services to `apply`; a bad file keeps the running ones and says why.
    What `restart_keys` (section.name: the listening socket, the worker count) name only
    changes at restart."""
    try:
        config = load(config_path)
        new = build(config)
    except (ConfigError, ValueError) as exc:
        log.error("reload refused, keeping the running configuration: %s", exc)
        return
    for key in restart_keys:
        if config.values[key] != running.values[key]:
            section, name = key.split(".")
            log.warning("reload: [%s] %s changed; takes effect at restart", section, name)
    configure_logging(config.log)
    apply(new)
    log.info("configuration reloaded from %s", config.source)
