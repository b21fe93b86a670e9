"""Hysteresis latch: turn a stream of anomaly scores into alarm episodes (one excursion, one alarm)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from axline import i18n

__all__ = ["AlarmEpisode", "AlarmLatch", "describe_episode"]


@dataclass(frozen=True)
class AlarmEpisode:
    """One alarm: sample indices ``start`` (first latched sample) to ``end`` (exclusive; None if open)."""

    start: int
    end: int | None
    peak: float


class AlarmLatch:
    """Latch an alarm on when the score stays >= ``on`` for ``min_duration`` samples; release it
    when the score falls below ``off`` (default ``0.8 * on``) for ``release`` samples.

    ``update(score)`` is the streaming form; ``run(scores)`` processes a batch from a fresh state.
    """

    def __init__(self, on: float, off: float | None = None, min_duration: int = 1, release: int = 1) -> None:
        if not isinstance(on, int | float | np.number) or not np.isfinite(on):
            raise ValueError(f"parameter 'on' must be a finite number (the alarm threshold), got {on!r}")
        off = 0.8 * float(on) if off is None else off
        if not isinstance(off, int | float | np.number) or not np.isfinite(off) or off > on:
            raise ValueError(f"parameter 'off' must be a finite number <= on ({on}), got {off!r}")
        for name, v in (("min_duration", min_duration), ("release", release)):
            if isinstance(v, bool) or not isinstance(v, int | np.integer) or not 1 <= v <= 1_000_000:
                raise ValueError(f"parameter {name!r} must be an integer in [1, 1000000], got {v!r}")
        self.on, self.off = float(on), float(off)
        self.min_duration, self.release = int(min_duration), int(release)
        self.reset()

    def reset(self) -> None:
        """Clear the state: no alarm, counters at zero."""
        self.active = False
        self._above = 0
        self._below = 0
        self._t = 0
        self._start = 0
        self._peak = -np.inf
        self.episodes: list[AlarmEpisode] = []

    def update(self, score: float) -> bool:
        """Feed one score; returns whether the alarm is on for this sample."""
        s = float(score)
        t = self._t
        self._t += 1
        if not self.active:
            self._above = self._above + 1 if s >= self.on else 0
            if self._above >= self.min_duration:
                self.active = True
                self._start = t - self.min_duration + 1
                self._peak = s
                self._below = 0
            return self.active
        self._peak = max(self._peak, s)
        self._below = self._below + 1 if s < self.off else 0
        if self._below >= self.release:
            self.active = False
            self._above = 0
            self.episodes.append(AlarmEpisode(self._start, t - self.release + 1, self._peak))
        return self.active

    def run(self, scores: Any) -> np.ndarray:
        """Process a batch of scores from a fresh state; returns the boolean alarm mask.

        The mask is on from the first sample of the qualifying excursion (not only from the sample
        on which ``min_duration`` was reached), so it marks the whole episode.
        """
        self.reset()
        s = np.asarray(scores, dtype=np.float64).ravel()
        mask = np.zeros(s.shape[0], dtype=bool)
        for v in s:
            self.update(v)
        for ep in self.open_and_closed():
            mask[ep.start : ep.end if ep.end is not None else s.shape[0]] = True
        return mask

    def open_and_closed(self) -> list[AlarmEpisode]:
        """Closed episodes plus the open one, if any."""
        eps = list(self.episodes)
        if self.active:
            eps.append(AlarmEpisode(self._start, None, self._peak))
        return eps


def describe_episode(detector: Any, X: Any, episode: AlarmEpisode, top: int = 3) -> dict[str, Any]:
    """What drove one alarm: each signal's mean share of the score over the episode and its largest
    robust z-score (how far from normal), the ``top`` signals first; with a short message in
    English and Korean. ``X`` holds the rows that the episode's indices refer to."""
    X = np.asarray(X, dtype=np.float64)
    end = X.shape[0] if episode.end is None else episode.end
    rows = X[episode.start : max(end, episode.start + 1)]
    share = detector.contributions(rows).mean(axis=0)
    z = detector.deviations(rows)
    zmax = z[np.argmax(np.abs(z), axis=0), np.arange(z.shape[1])]
    order = np.argsort(-share)
    signals = [{"signal": detector.columns[i], "share": round(float(share[i]), 4), "z": round(float(zmax[i]), 2)}
               for i in order]
    lead = signals[: max(1, int(top))]
    drivers = {lang: ", ".join(i18n.text("monitor.driver", lang, signal=s["signal"], share=f"{100 * s['share']:.0f}",
                                         z=f"{s['z']:+.1f}") for s in lead) for lang in i18n.LANGS}
    return {
        "start": episode.start,
        "end": episode.end,
        "peak": episode.peak,
        "signals": signals,
        "message": {lang: i18n.text("monitor.anomaly_drivers", lang, signals=drivers[lang]) for lang in i18n.LANGS},
    }
