"""Loading component configuration: dataclasses filled from a TOML file, then from command-line overrides.

Every component's configuration is a dataclass whose fields carry defaults and docstrings. One TOML file can
hold several components, one table each (``[access]``, ``[auth]``, …); :func:`load_config` reads the table of
one component, checks every key against the dataclass' fields, converts values to the field types, and applies
overrides (from the command line) last. Unknown keys and values of the wrong type are a
:class:`ConfigError`, never silently ignored.
"""

from __future__ import annotations

import dataclasses
import enum
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["ConfigError", "HostPort", "load_config", "parse_host_port"]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration file or option is missing, unknown or of the wrong type."""


@dataclasses.dataclass(frozen=True, slots=True)
class HostPort:
    """A TCP address, written ``HOST:PORT`` (``[::1]:PORT`` for IPv6)."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_host_port(text: str) -> HostPort:
    """Parse ``HOST:PORT``; the port must be 0–65535 (0 lets the OS choose)."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise ConfigError(f"expected HOST:PORT, got {text!r}")
    port = int(port_text)
    if port > 65535:
        raise ConfigError(f"port out of range in {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return HostPort(host, port)


def load_config(
    cls: type[T],
    *,
    path: Path | str | None = None,
    section: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> T:
    """Build ``cls`` from the TOML table ``section`` of ``path`` (if given), then ``overrides``.

    Overrides whose value is ``None`` are skipped, so unset command-line options keep the file's value.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                document = tomllib.load(f)
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        table = document.get(section, {}) if section else document
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: [{section}] must be a table")
        values.update(table)
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value

    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        where = f"[{section}]" if section else "configuration"
        raise ConfigError(
            f"unknown {where} option(s): {', '.join(unknown)}; known: {', '.join(sorted(fields))}"
        )
    converted = {name: _convert(name, value, hints[name]) for name, value in values.items()}
    return cls(**converted)


def _convert(name: str, value: Any, hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None and len(options) < len(typing.get_args(hint)):
            return None
        errors = []
        for option in options:
            try:
                return _convert(name, value, option)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError("; ".join(errors))
    if hint is Any:
        return value
    if origin is typing.Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            shown = ", ".join(repr(c) for c in allowed)
            raise ConfigError(f"{name}: expected one of {shown}, got {value!r}")
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ConfigError(f"{name}: expected true/false, got {value!r}")
    if hint in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected a number, got {value!r}")
        try:
            return hint(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected {hint.__name__}, got {value!r}") from None
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    if hint is Path:
        if not isinstance(value, str | Path):
            raise ConfigError(f"{name}: expected a path, got {value!r}")
        return Path(value)
    if hint is HostPort:
        if isinstance(value, HostPort):
            return value
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected HOST:PORT, got {value!r}")
        try:
            return parse_host_port(value)
        except ConfigError as exc:
            raise ConfigError(f"{name}: {exc}") from None
    if origin in (tuple, list, frozenset):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)[:1] or (Any,)
        return origin(_convert(name, v, item) for v in value)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a table, got {value!r}")
        return dict(value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        try:
            return hint(value)
        except ValueError:
            choices = ", ".join(str(m.value) for m in hint)
            raise ConfigError(f"{name}: expected one of {choices}, got {value!r}") from None
    if isinstance(hint, type) and isinstance(value, hint):
        return value
    raise ConfigError(f"{name}: cannot read a {hint!r} from {value!r}")
