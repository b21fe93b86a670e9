"""The plant file's validator: walks the YAML document and raises :class:`PlantConfigError` with the
key path of the first mistake and, for a misspelt name, the closest allowed one."""

from __future__ import annotations

import difflib
import re
from typing import Any

from axline import i18n
from axline.plant.model import PlantConfigError, Tag

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_\-]*$")
_EXP_RE = re.compile(r"^[-+]?\d+(\.\d*)?[eE][-+]?\d+$")
TIME_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


def suggest(word: str, choices: list[str] | tuple[str, ...]) -> i18n.Phrase:
    """" (did you mean 'x'?)" for the closest of ``choices``, or an empty phrase."""
    lower = {c.lower(): c for c in choices}
    if word.lower() in lower:
        return i18n.Phrase("plant.did_you_mean", name=repr(lower[word.lower()]))
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return i18n.Phrase("plant.did_you_mean", name=repr(close[0])) if close else i18n.Phrase(None)


class Validator:
    """Walks one plant file, raising PlantConfigError with the key path of the first mistake."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, path: str, key: str, /, **params: Any) -> PlantConfigError:
        """The error at key path ``path``: catalog text ``key`` with ``params``."""
        return PlantConfigError(self.file, path, key, **params)

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        """``value`` if it is a mapping with only ``allowed`` keys and every ``required`` one."""
        if not isinstance(value, dict):
            raise self.fail(path, "plant.not_mapping", type=type(value).__name__)
        for k in value:
            if not isinstance(k, str) or k not in allowed:
                raise self.fail(f"{path}.{k}" if path else str(k), "plant.unknown_key",
                                suggest=suggest(str(k), allowed), allowed=", ".join(allowed))
        for k in required:
            if k not in value:
                raise self.fail(path or "(top level)", "plant.missing_key", key=k)
        return value

    def seq(self, value: Any, path: str, min_len: int = 0) -> list:
        """``value`` as a list (``None``: empty) of at least ``min_len`` items."""
        if value is None:
            value = []
        if not isinstance(value, list):
            raise self.fail(path, "plant.not_list", type=type(value).__name__)
        if len(value) < min_len:
            raise self.fail(path, "plant.too_few", n=min_len)
        return value

    def string(self, value: Any, path: str) -> str:
        """``value`` if it is a text that is not blank."""
        if not isinstance(value, str) or not value.strip():
            raise self.fail(path, "plant.not_text", value=repr(value))
        return value

    def ident(self, value: Any, path: str) -> str:
        """``value`` if it is an id: lower-case letters, digits, ``_`` and ``-``."""
        s = self.string(value, path)
        if not _ID_RE.match(s):
            raise self.fail(path, "plant.bad_id", value=repr(s))
        return s

    def number(self, value: Any, path: str, lo: float | None = None, hi: float | None = None,
               strict_lo: bool = False) -> float:
        """``value`` as a float inside ``[lo, hi]`` (``lo`` excluded with ``strict_lo``); ``1e6`` as text counts."""
        if isinstance(value, str) and _EXP_RE.match(value.strip()):
            value = float(value)  # PyYAML reads 1e6 (no dot) as text; people write it as a number
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(path, "plant.not_number", value=repr(value))
        v = float(value)
        if lo is not None and (v < lo or (strict_lo and v <= lo)):
            raise self.fail(path, "plant.out_of_range", value=repr(value), op=">" if strict_lo else ">=", bound=f"{lo:g}")
        if hi is not None and v > hi:
            raise self.fail(path, "plant.out_of_range", value=repr(value), op="<=", bound=f"{hi:g}")
        return v

    def boolean(self, value: Any, path: str) -> bool:
        """``value`` if it is ``true`` or ``false``."""
        if not isinstance(value, bool):
            raise self.fail(path, "plant.not_bool", value=repr(value))
        return value

    def choice(self, value: Any, path: str, choices: tuple[str, ...] | list[str], what: str) -> str:
        """``value`` if it is one of ``choices``; ``what`` is the catalog key naming the kind of value."""
        if not isinstance(value, str) or value not in choices:
            raise self.fail(path, "plant.unknown_choice", value=repr(value), what=i18n.Phrase(what),
                            suggest=suggest(str(value), choices), allowed=", ".join(choices))
        return value

    def names(self, value: Any, path: str, default: str) -> dict[str, str]:
        """A display name: a text, or {en: ..., ko: ...}."""
        if value is None:
            return {"en": default, "ko": default}
        if isinstance(value, str):
            return {"en": value, "ko": value}
        m = self.mapping(value, path, ("en", "ko"))
        en = self.string(m.get("en", default), f"{path}.en")
        return {"en": en, "ko": self.string(m.get("ko", en), f"{path}.ko")}


def resolve_asset(v: Validator, value: Any, kp: str, asset_paths: list[str], prefix: str) -> str:
    """The asset path ``value`` names: a full path, a path below ``prefix`` or a unique ending."""
    return _resolve(v, value, kp, asset_paths, prefix, "plant.unknown_asset")


def resolve_tag(v: Validator, value: Any, kp: str, tags: dict[str, Tag], scope: str) -> str:
    """The tag path ``value`` names: a full path, a path below ``scope`` or a unique ending."""
    return _resolve(v, value, kp, list(tags), scope, "plant.unknown_tag")


def _resolve(v: Validator, value: Any, kp: str, paths: list[str], scope: str, unknown: str) -> str:
    s = v.string(value, kp)
    known = set(paths)
    for cand in (s, f"{scope}/{s}"):
        if cand in known:
            return cand
    matches = [p for p in paths if p.endswith("/" + s)]
    if len(matches) == 1:
        return matches[0]
    raise v.fail(kp, unknown, value=repr(s), suggest=suggest(s, paths))
