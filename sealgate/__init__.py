"""sealgate: a milter that keeps a domain's mail private without breaking mail."""

__version__ = "0.1.0"
