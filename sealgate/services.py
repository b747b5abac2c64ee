"""Build the shared services (resolver, clock) from a loaded configuration."""

from __future__ import annotations

from sealgate.config import Config, ConfigError
from sealgate.dns import make_resolver
from sealgate.keystore.cached import CachingKeystoreClient
from sealgate.pipeline import Services


def build(config: Config) -> Services:
    try:
        resolver = make_resolver(config.dns)
    except ValueError as exc:  # an unreadable or malformed zone file
        raise ConfigError(f"{config.source}: [dns] zone_files: {exc}") from None
    keys = CachingKeystoreClient(config.keystore.socket, config.keystore.timeout) \
        if config.milter.use_keystore else None
    return Services(config=config, resolver=resolver, keys=keys)
