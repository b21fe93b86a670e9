"""Connector registry: config names -> connector classes, and their declared option schemas.

Adding a protocol touches one module and one line in ``_CONNECTORS``.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Any

from axline import i18n

_CONNECTORS: dict[str, str] = {
    "opcua": "axline.connect.opcua:OpcUaConnector",
    "modbus": "axline.connect.modbus:ModbusConnector",
    "mqtt": "axline.connect.mqtt:MqttConnector",
    "sparkplug": "axline.connect.sparkplug:SparkplugConnector",
    "s7": "axline.connect.s7:S7Connector",
    "melsec": "axline.connect.melsec:MelsecConnector",
    "uns": "axline.connect.uns:UnsConnector",
}

_REQUIRED = object()


class OptionError(ValueError):
    """A connector option is wrong: ``key`` and what is wrong with it (catalog text ``message`` with ``params``;
    ``problem`` is the English text, ``phrase`` the text in either language)."""

    def __init__(self, key: str, message: str, /, **params: Any) -> None:
        self.key = key
        self.phrase = i18n.Phrase(message, **params)
        self.problem = self.phrase.text("en")
        super().__init__(f"{key}: {self.problem}" if key else self.problem)


@dataclass(frozen=True)
class Option:
    """One connector option: its type, default, help, allowed values and range."""
    type: type | tuple[type, ...]
    default: Any = _REQUIRED
    help: str = ""
    choices: tuple[Any, ...] | None = None
    min: float | None = None
    max: float | None = None


class Schema:
    """A connector's declared configuration: option name -> Option."""

    def __init__(self, options: dict[str, Option]) -> None:
        self.options = options

    def validate(self, given: dict[str, Any]) -> dict[str, Any]:
        """The options ``given`` checked and completed with defaults; ``OptionError`` on the first mistake."""
        out: dict[str, Any] = {}
        for key in given:
            if key not in self.options:
                close = difflib.get_close_matches(key, list(self.options), n=1)
                hint = i18n.Phrase("plant.did_you_mean", name=repr(close[0])) if close else i18n.Phrase(None)
                raise OptionError(key, "connect.unknown_option", suggest=hint, allowed=", ".join(self.options))
        for key, opt in self.options.items():
            if key not in given:
                if opt.default is _REQUIRED:
                    raise OptionError("", "connect.missing_option", key=key, help=opt.help)
                out[key] = opt.default
                continue
            value = given[key]
            types = opt.type if isinstance(opt.type, tuple) else (opt.type,)
            if float in types and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                names = " or ".join(t.__name__ for t in types)
                raise OptionError(key, "connect.option_type", types=names, value=repr(value), help=opt.help)
            if opt.choices is not None and value not in opt.choices:
                raise OptionError(key, "connect.option_choice", value=repr(value), choices=", ".join(map(str, opt.choices)))
            if opt.min is not None and value < opt.min:
                raise OptionError(key, "connect.option_small", value=repr(value), min=opt.min)
            if opt.max is not None and value > opt.max:
                raise OptionError(key, "connect.option_large", value=repr(value), max=opt.max)
            out[key] = value
        return out


def names() -> list[str]:
    """The connector type names."""
    return sorted(_CONNECTORS)


def connector_class(name: str) -> type:
    """The class of connector type ``name`` (imported on first use)."""
    try:
        target = _CONNECTORS[name]
    except KeyError:
        raise ValueError(f"connector type {name!r} is not known; known types: {', '.join(names())}") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


def schema(name: str) -> Schema:
    """The option schema of connector type ``name``."""
    return connector_class(name).schema
