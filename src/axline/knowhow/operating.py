"""Operating know-how: how experienced people run the process, learnt from their audited setpoint changes.

Every write to a machine lands in the audit trail (who, role, tag, old and new value, result, time).
The setpoint writes of the people the plant names as experienced (``knowhow/operating.yaml`` beside
the plant file: a list of user names and/or roles) are grouped into **episodes**: the moves one person
made on one asset within ``group_s`` of each other. For each episode the historian gives the process
state before it (the mean of each context signal over ``before_s``; a counter's rate per hour) and
its outcome (the mean over ``after_s`` once ``settle_s`` has passed, minus the state before).

Advice for the current state comes per setpoint from one of three models: a distance-weighted vote
of the *k* nearest episodes (those whose state was most alike), either on the value the expert set
(``target``) or on the size of the change (``delta``); or a ridge regression of the value set on the
state (``linear``: a rule like "O2 setpoint follows the gas flow" is a line, which a vote of
neighbours only approximates by steps; a piecewise rule suits the vote better). An episode in
which a setpoint was left alone while another one was moved says "hold" for it. Which signals
count, *k*, the model and the dead band below which the advice is "hold" are chosen per setpoint by
leave-one-out over the learnt episodes only. Each piece of advice carries its evidence: the episodes it came from, their moves and
their outcomes. No person is named in the advice (the trail keeps who did what for admins).

Everything here is blocking (historian queries, file reads): the web routes call it in a worker thread
(:class:`axline.knowhow.operating_live.OperatingKnowHow`).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import warnings
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from axline import i18n

CONFIG_FILE = os.path.join("knowhow", "operating.yaml")
CONTEXT_KINDS = ("analog", "counter")  # tag kinds that describe the process state (not state/bool codes)
MAX_EPISODES = 5000  # newest episodes kept per learner (bounded)
EVIDENCE = 3
K_CHOICES = (1, 3, 5, 7, 10)
BAND_CHOICES = (0.1, 0.25, 0.5)  # dead band, as a fraction of the median move size of the setpoint
MAX_FEATURES = 4
RIDGE = 0.1  # "linear" mode: ridge penalty on the standardised weights
LINEAR_NEIGHBOURS = 5  # "linear" mode: the nearest episodes shown as evidence and counted for agreement


class OperatingError(ValueError):
    """The operating know-how configuration or its inputs are not usable."""


@dataclass(frozen=True)
class OperatingConfig:
    """Whose moves count and the time windows of an episode."""

    experts: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()
    before_s: float = 600.0
    settle_s: float = 300.0
    after_s: float = 900.0
    group_s: float = 120.0

    @classmethod
    def from_dict(cls, raw: dict[str, Any], where: str = "operating know-how") -> OperatingConfig:
        """From the YAML mapping ``{experts: [...], roles: [...], before_s, settle_s, after_s, group_s}``."""
        if not isinstance(raw, dict):
            raise i18n.error(OperatingError, "knowhow.err.op_not_mapping", where=where)
        unknown = set(raw) - {"experts", "roles", "before_s", "settle_s", "after_s", "group_s"}
        if unknown:
            raise i18n.error(OperatingError, "knowhow.err.op_unknown_keys", where=where, keys=", ".join(sorted(map(str, unknown))))
        kw: dict[str, Any] = {}
        for key in ("experts", "roles"):
            v = raw.get(key) or []
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
                raise i18n.error(OperatingError, "knowhow.err.op_names", where=where, key=key)
            kw[key] = frozenset(v)
        for key in ("before_s", "settle_s", "after_s", "group_s"):
            if key in raw:
                v = raw[key]
                if isinstance(v, bool) or not isinstance(v, int | float) or not 0 <= v <= 86400:
                    raise i18n.error(OperatingError, "knowhow.err.op_seconds", where=where, key=key)
                kw[key] = float(v)
        return cls(**kw)

    @property
    def configured(self) -> bool:
        """True when someone is named as experienced (by name or role)."""
        return bool(self.experts or self.roles)


def config_for_plant(plant: Any) -> OperatingConfig:
    """``knowhow/operating.yaml`` beside the plant file, or an empty configuration (nobody named)."""
    path = os.path.join(plant.base_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return OperatingConfig()
    import yaml

    with open(path, encoding="utf-8") as f:
        return OperatingConfig.from_dict(yaml.safe_load(f) or {}, path)


# -- moves from the audit trail ----------------------------------------------------------------------
@dataclass(frozen=True)
class Move:
    """One audited, successful setpoint write."""

    ts_ns: int
    who: str
    tag: str
    old: float | None
    new: float


def read_audit(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """The entries of an audit trail file (JSON lines). A line that is not a JSON object raises."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                e = json.loads(line)
            except ValueError as err:
                raise i18n.error(OperatingError, "knowhow.err.op_audit_json", path=path, n=n, error=err) from None
            if not isinstance(e, dict):
                raise i18n.error(OperatingError, "knowhow.err.op_audit_object", path=path, n=n)
            yield e


def _ts_ns(ts: Any) -> int | None:
    if not isinstance(ts, str) or not ts:
        return None
    try:
        t = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return int(round(t.timestamp() * 1e6)) * 1000


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def expert_moves(entries: Iterable[dict[str, Any]], cfg: OperatingConfig,
                 tags: Collection[str] | None = None) -> tuple[list[Move], dict[str, int]]:
    """The successful ``tag.write`` entries of experienced people (optionally only to ``tags``), oldest
    first, and counts of what was left out and why."""
    moves: list[Move] = []
    skipped = {"not_a_write": 0, "not_experienced": 0, "attempt": 0, "not_ok": 0, "other_tag": 0, "unreadable": 0}
    for e in entries:
        if e.get("action") != "tag.write":
            skipped["not_a_write"] += 1
            continue
        if e.get("who") not in cfg.experts and e.get("role") not in cfg.roles:
            skipped["not_experienced"] += 1
            continue
        if e.get("result") != "ok":
            skipped["attempt" if e.get("result") == "attempt" else "not_ok"] += 1
            continue
        tag = e.get("target")
        if tags is not None and tag not in tags:
            skipped["other_tag"] += 1
            continue
        ts, new = _ts_ns(e.get("ts")), _num(e.get("new"))
        if ts is None or new is None or not isinstance(tag, str):
            skipped["unreadable"] += 1
            continue
        moves.append(Move(ts, str(e.get("who")), tag, _num(e.get("old")), new))
    moves.sort(key=lambda m: m.ts_ns)
    return moves, skipped


# -- episodes --------------------------------------------------------------------------------------------
@dataclass
class Episode:
    """Moves one person made on one asset close together, with the state before and the outcome after."""

    asset: str
    ts_ns: int
    end_ns: int
    moves: dict[str, tuple[float, float]]  # setpoint tag -> (value before, value set)
    state: dict[str, float] = field(default_factory=dict)  # context signal -> value before
    outcome: dict[str, float] = field(default_factory=dict)  # context signal -> change after

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready view (tag paths shortened to signal names)."""
        short = _short
        return {"ts": self.ts_ns, "asset": self.asset,
                "moves": {short(k): [_r(a), _r(b)] for k, (a, b) in self.moves.items()},
                "state": {short(k): _r(v) for k, v in self.state.items()},
                "outcome": {short(k): _r(v) for k, v in self.outcome.items()}}


def _short(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def _r(v: float) -> float:
    if not math.isfinite(v):
        return v
    return round(v, 3) if abs(v) < 100 else round(v, 1)


def _asset_of(tag: str) -> str:
    return tag.rsplit("/", 1)[0]


def group_moves(moves: list[Move], group_s: float) -> list[tuple[str, list[Move]]]:
    """Consecutive moves by one person on one asset within ``group_s`` of the previous one: one episode."""
    open_: dict[tuple[str, str], list[Move]] = {}
    out: list[tuple[str, list[Move]]] = []
    gap = int(group_s * 1e9)
    for m in moves:
        key = (m.who, _asset_of(m.tag))
        cur = open_.get(key)
        if cur is not None and m.ts_ns - cur[-1].ts_ns <= gap:
            cur.append(m)
            continue
        cur = [m]
        open_[key] = cur
        out.append((key[1], cur))
    return out


def window_state(historian: Any, context: dict[str, str], start_ns: int, end_ns: int) -> dict[str, float]:
    """The mean of each context signal in [start, end) (a counter: its rate per hour); signals without
    readings there are left out."""
    if end_ns <= start_ns:
        return {}
    series = historian.query(list(context), start_ns, end_ns - 1)
    out: dict[str, float] = {}
    for tag, kind in context.items():
        s = series.get(tag)
        if s is None or not len(s):
            continue
        ok = np.isfinite(s.value)
        ts, v = s.ts[ok], s.value[ok]
        if not len(v):
            continue
        if kind == "counter":
            if len(v) < 2 or ts[-1] <= ts[0]:
                continue
            out[tag] = float(v[-1] - v[0]) / ((ts[-1] - ts[0]) / 3.6e12)
        else:
            out[tag] = float(np.mean(v))
    return out


def last_values(historian: Any, tags: list[str], before_ns: int, lookback_s: float) -> dict[str, float]:
    """The last reading of each tag before ``before_ns`` (within ``lookback_s``)."""
    series = historian.query(tags, before_ns - int(lookback_s * 1e9), before_ns - 1)
    out = {}
    for t in tags:
        s = series.get(t)
        if s is not None and len(s) and math.isfinite(s.value[-1]):
            out[t] = float(s.value[-1])
    return out


def build_episodes(moves: list[Move], historian: Any, context: dict[str, dict[str, str]],
                   setpoints: dict[str, list[str]], cfg: OperatingConfig) -> list[Episode]:
    """Episodes of ``moves`` with their state and outcome from ``historian``. ``context``: asset path ->
    {context tag: kind}; ``setpoints``: asset path -> its writable setpoint tags (their values before a
    move are part of the state). Moves on assets not in ``context`` are left out."""
    eps: list[Episode] = []
    for asset, group in group_moves(moves, cfg.group_s):
        if asset not in context:
            continue
        t0, t1 = group[0].ts_ns, group[-1].ts_ns
        sp = setpoints.get(asset, [])
        before = last_values(historian, sp, t0, max(cfg.before_s, 60.0))
        mv: dict[str, tuple[float, float]] = {}
        for m in group:
            old = mv[m.tag][0] if m.tag in mv else (m.old if m.old is not None else before.get(m.tag))
            if old is None:
                continue
            mv[m.tag] = (old, m.new)
        mv = {k: v for k, v in mv.items() if v[1] != v[0]}
        if not mv:
            continue
        state = window_state(historian, context[asset], t0 - int(cfg.before_s * 1e9), t0)
        for tag in sp:
            val = mv[tag][0] if tag in mv else before.get(tag)
            if val is not None:
                state[tag] = val
        a0 = t1 + int(cfg.settle_s * 1e9)
        after = window_state(historian, context[asset], a0, a0 + int(cfg.after_s * 1e9))
        outcome = {k: after[k] - state[k] for k in after if k in state}
        eps.append(Episode(asset, t0, t1, mv, state, outcome))
    return eps[-MAX_EPISODES:]


def plant_context(plant_json: dict[str, Any]) -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
    """From the plant's JSON (``Plant.to_json()``), for every asset with writable setpoints: its context
    signals (analog and counter tags that are not written) and its writable setpoints."""
    context: dict[str, dict[str, str]] = {}
    setpoints: dict[str, list[str]] = {}
    for line in plant_json.get("lines") or []:
        for asset in line.get("assets") or []:
            tags = asset.get("tags") or []
            sp = [t["path"] for t in tags if t.get("writable") and t.get("kind") == "setpoint"]
            if not sp:
                continue
            setpoints[asset["path"]] = sp
            context[asset["path"]] = {t["path"]: t.get("kind", "analog") for t in tags
                                      if t.get("kind", "analog") in CONTEXT_KINDS and not t.get("writable")}
    return context, setpoints


# -- learning and advice -----------------------------------------------------------------------------------
@dataclass
class _Model:
    features: list[str]
    k: int
    mode: str  # "target" | "delta" | "linear"
    band: float  # dead band in setpoint units
    loo: dict[str, Any]
    coef: np.ndarray | None = None  # "linear": intercept, then one weight per feature (standardised)


class Advisor:
    """Advice per setpoint from the episodes of one asset (see the module docstring)."""

    def __init__(self, episodes: list[Episode]) -> None:
        if not episodes:
            raise i18n.error(OperatingError, "knowhow.err.op_no_episodes")
        self.asset = episodes[0].asset
        self.episodes = [e for e in episodes if e.asset == self.asset]
        self.setpoints = sorted({t for e in self.episodes for t in e.moves})
        names = sorted({k for e in self.episodes for k in e.state})
        self.names = names
        X = np.array([[e.state.get(n, np.nan) for n in names] for e in self.episodes], dtype=float)
        with warnings.catch_warnings():  # a signal without readings in any episode: mean NaN, handled below
            warnings.simplefilter("ignore", RuntimeWarning)
            self.mean = np.nanmean(X, axis=0)
            sd = np.nanstd(X, axis=0)
        self.mean = np.where(np.isfinite(self.mean), self.mean, 0.0)
        self.sd = np.where(np.isfinite(sd) & (sd > 1e-9), sd, 1.0)
        Z = (X - self.mean) / self.sd
        self.Z = np.where(np.isfinite(Z), Z, 0.0)
        self.models: dict[str, _Model] = {}
        for sp in self.setpoints:
            m = self._fit(sp)
            if m is not None:
                self.models[sp] = m

    # examples for one setpoint: (episode index, value before, value set)
    def _examples(self, sp: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        idx, cur, new = [], [], []
        for i, e in enumerate(self.episodes):
            if sp in e.moves:
                a, b = e.moves[sp]
            elif sp in e.state:
                a = b = e.state[sp]
            else:
                continue
            idx.append(i)
            cur.append(a)
            new.append(b)
        return np.array(idx, dtype=int), np.array(cur), np.array(new)

    def _fit(self, sp: str) -> _Model | None:
        idx, cur, new = self._examples(sp)
        moved = new != cur
        if moved.sum() < 2:
            return None
        step = float(np.median(np.abs(new - cur)[moved]))
        truth = np.sign(new - cur)
        cols = {n: j for j, n in enumerate(self.names)}
        chosen: list[str] = []
        best: tuple | None = None
        best_model: _Model | None = None
        candidates = [n for n in self.names]
        while len(chosen) < MAX_FEATURES:
            round_best = None
            for f in candidates:
                if f in chosen:
                    continue
                feats = [*chosen, f]
                Z = self.Z[idx][:, [cols[n] for n in feats]]
                D = np.sqrt(((Z[:, None, :] - Z[None, :, :]) ** 2).sum(-1))
                np.fill_diagonal(D, np.inf)
                order = np.argsort(D, axis=1, kind="stable")
                preds = []
                for k in K_CHOICES:
                    if k >= len(idx):
                        continue
                    nb = order[:, :k]
                    w = 1.0 / (np.take_along_axis(D, nb, 1) + 0.05)
                    preds.append((k, "target", (w * new[nb]).sum(1) / w.sum(1) - cur))
                    preds.append((k, "delta", (w * (new - cur)[nb]).sum(1) / w.sum(1)))
                if len(idx) > len(feats) + 2:
                    preds.append((0, "linear", _loo_linear(Z, new) - cur))
                for k, mode, pred in preds:
                    for frac in BAND_CHOICES:
                        band = frac * step
                        got = np.where(np.abs(pred) < band, 0.0, np.sign(pred))
                        acc_m = float(np.mean(got[moved] == truth[moved]))
                        acc_h = float(np.mean(got[~moved] == 0)) if (~moved).any() else acc_m
                        err = float(np.mean(np.abs(pred - (new - cur)))) / max(step, 1e-9)
                        score = (round(0.5 * (acc_m + acc_h), 6), round(acc_m, 6), -round(err, 4), -len(feats), -k)
                        if round_best is None or score > round_best[0]:
                            round_best = (score, _Model(feats, k, mode, band, {
                                "moves": int(moved.sum()), "holds": int((~moved).sum()),
                                "direction_agreement": round(acc_m, 3), "hold_agreement": round(acc_h, 3),
                                "mean_error_in_steps": round(err, 3)}))
            if round_best is None or (best is not None and round_best[0][:3] <= best[:3]):
                break
            best, best_model = round_best[0], round_best[1]
            chosen = list(best_model.features)
        if best_model is not None and best_model.mode == "linear":
            best_model.coef = _fit_linear(self.Z[idx][:, [cols[n] for n in best_model.features]], new)
        return best_model

    def advise(self, state: dict[str, float], top: int = EVIDENCE) -> list[dict[str, Any]]:
        """For each learnt setpoint: raise / lower / hold, the suggested change and value, the share of
        the nearest episodes that moved the same way, and those episodes as evidence."""
        out = []
        for sp, m in self.models.items():
            cur = state.get(sp)
            if cur is None:
                continue
            idx, cur_e, new_e = self._examples(sp)
            cols = [self.names.index(n) for n in m.features]
            q = np.array([state.get(n, np.nan) for n in m.features], dtype=float)
            zq = (q - self.mean[cols]) / self.sd[cols]
            zq = np.where(np.isfinite(zq), zq, 0.0)
            d = np.sqrt(((self.Z[idx][:, cols] - zq) ** 2).sum(1))
            nb = np.argsort(d, kind="stable")[:m.k or LINEAR_NEIGHBOURS]
            w = 1.0 / (d[nb] + 0.05)
            if m.mode == "linear" and m.coef is not None:
                delta = float(m.coef[0] + zq @ m.coef[1:]) - cur
            elif m.mode == "target":
                delta = float((w * new_e[nb]).sum() / w.sum()) - cur
            else:
                delta = float((w * (new_e - cur_e)[nb]).sum() / w.sum())
            direction = "hold" if abs(delta) < m.band else ("raise" if delta > 0 else "lower")
            signs = np.sign(new_e[nb] - cur_e[nb])
            want = {"raise": 1.0, "lower": -1.0, "hold": 0.0}[direction]
            evidence = []
            for j in nb[:top]:
                e = self.episodes[int(idx[j])]
                moved = sorted(e.outcome, key=lambda n: -abs(e.outcome[n]) / self.sd[self.names.index(n)]
                               if n in self.names else 0.0)
                evidence.append({**e.to_json(), "distance": round(float(d[j]), 3),
                                 "outcome_top": [[_short(n), _r(e.outcome[n])] for n in moved[:3]]})
            out.append({"tag": sp, "signal": _short(sp), "current": _r(cur), "advice": direction,
                        "change": _r(delta) if direction != "hold" else 0.0,
                        "suggested": _r(cur + delta) if direction != "hold" else _r(cur),
                        "agreement": round(float(np.mean(signs == want)), 2),
                        "based_on": [_short(f) for f in m.features], "neighbours": int(len(nb)),
                        "evidence": evidence})
        return out

    def summary(self) -> dict[str, Any]:
        """What was learnt: episodes, and per setpoint the choices and their leave-one-out agreement."""
        return {"asset": self.asset, "episodes": len(self.episodes),
                "setpoints": {sp: {"based_on": [_short(f) for f in m.features], "k": m.k, "mode": m.mode,
                                   "band": _r(m.band), "leave_one_out": m.loo}
                              for sp, m in self.models.items()}}


def _design(Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    X = np.concatenate([np.ones((len(Z), 1)), Z], axis=1)
    pen = np.eye(X.shape[1]) * RIDGE
    pen[0, 0] = 0.0  # the intercept is not penalised
    return X, pen


def _fit_linear(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Ridge regression of ``y`` on the standardised features ``Z``: intercept, then weights."""
    X, pen = _design(Z)
    return np.linalg.solve(X.T @ X + pen, X.T @ y)


def _loo_linear(Z: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Leave-one-out predictions of the ridge regression (each row predicted by a fit without it)."""
    X, pen = _design(Z)
    H = X @ np.linalg.solve(X.T @ X + pen, X.T)
    h = np.clip(np.diag(H), None, 1 - 1e-9)
    return y - (y - H @ y) / (1 - h)


def learn(entries: Iterable[dict[str, Any]], historian: Any, context: dict[str, dict[str, str]],
          setpoints: dict[str, list[str]], cfg: OperatingConfig,
          until_ns: int | None = None) -> tuple[dict[str, Advisor], dict[str, Any]]:
    """Advisors per asset from an audit trail's entries and the historian (moves before ``until_ns``
    only, when given), and what went into them."""
    tags = {t for sps in setpoints.values() for t in sps}
    moves, skipped = expert_moves(entries, cfg, tags)
    if until_ns is not None:
        moves = [m for m in moves if m.ts_ns < until_ns]
    eps = build_episodes(moves, historian, context, setpoints, cfg)
    by_asset: dict[str, list[Episode]] = {}
    for e in eps:
        by_asset.setdefault(e.asset, []).append(e)
    advisors = {a: Advisor(es) for a, es in by_asset.items()}
    return advisors, {"moves": len(moves), "episodes": len(eps), "skipped": skipped}


def current_state(historian: Any, asset: str, context: dict[str, dict[str, str]], setpoints: dict[str, list[str]],
                  cfg: OperatingConfig, now_ns: int) -> dict[str, float]:
    """The state of ``asset`` now, as an episode's state is measured."""
    state = window_state(historian, context.get(asset, {}), now_ns - int(cfg.before_s * 1e9), now_ns + 1)
    state.update(last_values(historian, setpoints.get(asset, []), now_ns + 1, max(cfg.before_s, 60.0)))
    return state

