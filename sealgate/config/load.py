"""Read a TOML config file and check it against the schema."""

from __future__ import annotations

import socket
import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from sealgate.config.schema import BY_KEY, OPTIONS, SECTIONS, Option

DEFAULT_PATH = Path("/etc/sealgate/sealgate.conf")

TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", bool: "true or false",
              list: "a list of strings"}


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, the key and what was expected."""


class Config:
    """Effective configuration: every option, set or defaulted, as config.section.name."""

    def __init__(self, values: dict[str, Any], source: str) -> None:
        self.source = source
        self.values = values
        for section in SECTIONS:
            setattr(self, section, SimpleNamespace(**{
                o.name: values[o.key] for o in OPTIONS if o.section == section}))

    def __getattr__(self, name: str) -> Any:  # sections are set in __init__; this only types them
        raise AttributeError(f"no config section {name!r}")


def _coerce(option: Option, value: Any) -> tuple[Any, str | None]:
    """Return the value in the option's type, or an error text."""
    expected = TYPE_NAMES[option.type]
    if option.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if option.type is int and isinstance(value, bool):
        return value, expected
    if not isinstance(value, option.type):
        return value, expected
    if isinstance(value, list) and not all(isinstance(v, str) for v in value):
        return value, expected
    if option.check is not None:
        problem = option.check(value)
        if problem:
            return value, problem
    return value, None


def _resolved(values: dict[str, Any]) -> dict[str, Any]:
    """Fill the defaults that depend on this host."""
    if not values["verify.authserv_id"]:
        values["verify.authserv_id"] = socket.getfqdn()
    return values


def load_text(text: str, source: str) -> Config:
    """Parse TOML text; every problem found is reported at once, one per line."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    problems: list[str] = []
    values = {o.key: o.default for o in OPTIONS}
    for section, table in data.items():
        if section not in SECTIONS:
            problems.append(f"{source}: unknown section [{section}] "
                            f"(known: {', '.join(SECTIONS)})")
            continue
        if not isinstance(table, dict):
            problems.append(f"{source}: {section} must be a [section] table")
            continue
        for name, raw in table.items():
            option = BY_KEY.get(f"{section}.{name}")
            if option is None:
                known = ", ".join(o.name for o in OPTIONS if o.section == section)
                problems.append(f"{source}: [{section}] unknown key {name!r} (known: {known})")
                continue
            value, problem = _coerce(option, raw)
            if problem:
                problems.append(f"{source}: [{section}] {name} = {raw!r}: expected {problem}")
            values[option.key] = value
    if problems:
        raise ConfigError("\n".join(problems))
    return Config(_resolved(values), source)


def load(path: Path | None) -> Config:
    """Load `path`; with no path, the default file if it exists, else the built-in defaults."""
    if path is None:
        if not DEFAULT_PATH.exists():
            return Config(_resolved({o.key: o.default for o in OPTIONS}), "built-in defaults")
        path = DEFAULT_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    return load_text(text, str(path))
