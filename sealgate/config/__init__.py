"""Configuration: one schema (schema.py), one loader (load.py)."""

from sealgate.config.load import DEFAULT_PATH, Config, ConfigError, load, load_text

__all__ = ["DEFAULT_PATH", "Config", "ConfigError", "load", "load_text"]
