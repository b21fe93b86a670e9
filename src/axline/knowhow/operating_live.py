"""Operating advice for the running plant: the advisors relearnt from its audit trail and historian,
asked for the current state (see :mod:`axline.knowhow.operating`)."""

from __future__ import annotations

from typing import Any

from axline.knowhow.operating import (
    CONFIG_FILE,
    Advisor,
    OperatingConfig,
    _short,
    config_for_plant,
    current_state,
    learn,
    plant_context,
)


class OperatingKnowHow:
    """Operating advice for the running plant. ``entries()`` gives the audit trail's entries,
    ``version()`` something that changes when the trail grows (its size), ``historian()`` the historian
    and ``now_ns()`` the plant's clock. The advisors are relearnt when the trail has grown, at most once
    per ``refresh_s``. Blocking: call it from a worker thread."""

    def __init__(self, cfg: OperatingConfig | Any, plant_json: dict[str, Any], entries: Any, historian: Any,
                 now_ns: Any, version: Any = None, refresh_s: float = 300.0) -> None:
        import threading

        # the configuration, or a callable that reads it (first used in a worker thread, never on the loop)
        self._cfg_source = cfg
        self._cfg: OperatingConfig | None = cfg if isinstance(cfg, OperatingConfig) else None
        self.context, self.setpoints = plant_context(plant_json)
        self.names = {t["path"]: t.get("name") or {"en": t.get("signal"), "ko": t.get("signal")}
                      for ln in plant_json.get("lines") or [] for a in ln.get("assets") or []
                      for t in a.get("tags") or []}
        self.asset_names = {a["path"]: a.get("name") or {"en": a.get("id"), "ko": a.get("id")}
                            for ln in plant_json.get("lines") or [] for a in ln.get("assets") or []}
        self.units = {t["path"]: t.get("unit", "") for ln in plant_json.get("lines") or []
                      for a in ln.get("assets") or [] for t in a.get("tags") or []}
        self._entries, self._historian, self._now, self._version = entries, historian, now_ns, version
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._learnt: tuple[Any, float, dict[str, Advisor], dict[str, Any]] | None = None
        self.errors = 0
        self.last_error: str | None = None
        self.relearnt = 0

    @classmethod
    def for_service(cls, svc: Any) -> OperatingKnowHow:
        """Wired to a running service: its plant, audit trail, historian and clock."""
        def audit_log() -> Any:
            if not hasattr(svc.security, "audit"):
                svc._open_security()
            return svc.security.audit

        return cls(lambda: config_for_plant(svc.plant), svc.plant.to_json(),
                   entries=lambda: audit_log().iter_entries(), historian=lambda: svc.historian, now_ns=svc.now_ns,
                   version=lambda: audit_log().size())

    @property
    def cfg(self) -> OperatingConfig:
        """The configuration (read on first use; a file that cannot be read is counted and raised)."""
        if self._cfg is None:
            try:
                self._cfg = self._cfg_source()
            except Exception as e:
                self.errors += 1
                self.last_error = f"{CONFIG_FILE}: {e}"
                raise
        return self._cfg

    def status(self) -> dict[str, Any]:
        """Configured or not, how many episodes were learnt, failures (for health)."""
        learnt = self._learnt
        return {"configured": self._cfg.configured if self._cfg is not None else None, "episodes": learnt[3].get("episodes") if learnt else None,
                "relearnt": self.relearnt, "errors": self.errors, "last_error": self.last_error}

    def _advisors(self) -> tuple[dict[str, Advisor], dict[str, Any]]:
        import time

        with self._lock:
            version = self._version() if self._version is not None else None
            now = time.monotonic()
            if self._learnt is not None:
                v, at, adv, info = self._learnt
                if v == version or now - at < self.refresh_s:
                    return adv, info
            try:
                adv, info = learn(self._entries(), self._historian(), self.context, self.setpoints, self.cfg)
            except Exception as e:
                self.errors += 1
                self.last_error = f"{type(e).__name__}: {e}"
                raise
            self.last_error = None
            self.relearnt += 1
            self._learnt = (version, now, adv, info)
            return adv, info

    def advice(self, asset: str | None = None) -> dict[str, Any]:
        """Advice for each asset (or one) in its current state, with evidence; the setpoints and signals
        named in both languages."""
        if not self.cfg.configured:
            return {"configured": False, "assets": []}
        advisors, info = self._advisors()
        now = int(self._now())
        out = []
        for a, adv in sorted(advisors.items()):
            if asset is not None and a != asset:
                continue
            state = current_state(self._historian(), a, self.context, self.setpoints, self.cfg, now)
            items = adv.advise(state)
            for it in items:
                it["name"] = self.names.get(it["tag"])
                it["unit"] = self.units.get(it["tag"], "")
            out.append({"asset": a, "name": self.asset_names.get(a), "episodes": len(adv.episodes),
                        "advice": items,
                        "signals": {_short(t): self.names.get(t) for t in self.context.get(a, {})}
                        | {_short(t): self.names.get(t) for t in self.setpoints.get(a, [])}})
        return {"configured": True, "at": now, "assets": out, "learnt": {"moves": info["moves"],
                                                                          "episodes": info["episodes"]}}
