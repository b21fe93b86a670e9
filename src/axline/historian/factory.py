"""Choosing the historian backend named in the plant file (the backends never import this module)."""

from __future__ import annotations

import os

from axline.historian.base import Historian


def open_historian(spec: str | dict, base_dir: str | None = None) -> Historian:
    """Open a historian from the plant file's ``historian`` value.

    ``"embedded:PATH"`` / ``{"backend": "embedded", "path": PATH}`` opens the file store;
    ``"postgresql://..."`` opens the PostgreSQL backend."""
    if isinstance(spec, str):
        if spec.startswith(("postgresql://", "postgres://")):
            spec = {"backend": "postgresql", "dsn": spec}
        elif spec.startswith("embedded:"):
            spec = {"backend": "embedded", "path": spec.split(":", 1)[1]}
        else:
            spec = {"backend": "embedded", "path": spec}
    backend = spec.get("backend", "embedded")
    if backend == "embedded":
        from axline.historian.embedded import EmbeddedHistorian

        path = spec.get("path", "data/historian")
        if base_dir and not os.path.isabs(path):
            path = os.path.join(base_dir, path)
        return EmbeddedHistorian(path, fsync=spec.get("fsync", "batch"), retention_days=spec.get("retention_days"))
    if backend == "postgresql":
        try:
            from axline.historian.postgres import PostgresHistorian  # type: ignore[import-not-found]
        except ImportError as e:  # pragma: no cover - arrives with the PostgreSQL backend
            raise RuntimeError(
                "historian: the PostgreSQL backend is not available in this build; "
                "use 'historian: embedded' or install axline with PostgreSQL support"
            ) from e
        extra = {k: spec[k] for k in ("schema", "partition", "retention_days") if spec.get(k) is not None}
        return PostgresHistorian(spec["dsn"], **extra)
    raise ValueError(f"historian.backend: {backend!r} is not known (allowed: 'embedded', 'postgresql')")
