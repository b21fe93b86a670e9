"""The surrogate: how each metric responds to the setpoints, with its uncertainty.

One Gaussian process per metric over the decisions scaled to [0, 1] by their bounds (Matern 5/2
with a learnt noise level). Observations come from the plant's history (stretches of steady
setpoints), from the advisor's own trials on the plant and from trials on the twin; each carries
its own noise (a twin trial is a model's answer, so it is trusted less than the plant's).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np

from axline.optimize.spec import UnitSpec

MAX_OBSERVATIONS = 400  # bounded: the oldest observations go first


@dataclass
class Observation:
    """Setpoints and what the metrics were under them; ``feasible`` False: a trial that broke a
    constraint or tripped the unit (the feasibility classifier learns from these labels)."""

    x: dict[str, float]  # decision tag -> setpoint
    y: dict[str, float]  # metric -> value
    source: str  # "history" | "plant" | "twin"
    ts: int = 0
    feasible: bool | None = None  # None: not judged


@dataclass
class Surrogate:
    """One Gaussian process per metric; ``trend`` adds a linear term to the kernel, so a response
    that rises with the move (a transient's peak, say) is extrapolated as rising, not as reverting
    to the mean of what was seen."""

    spec: UnitSpec
    observations: list[Observation] = field(default_factory=list)
    twin_noise: float = 0.02  # relative noise assumed for a twin trial
    plant_noise: float = 0.01  # relative noise assumed for a plant observation
    trend: bool = False
    _models: dict[str, object] = field(default_factory=dict, repr=False)

    def add(self, obs: Observation) -> None:
        """Learn from one observation (a non-finite setpoint is ignored; the oldest go past the bound)."""
        if not all(math.isfinite(obs.x.get(d.tag, math.nan)) for d in self.spec.decisions):
            return
        self.observations.append(obs)
        del self.observations[:-MAX_OBSERVATIONS]
        self._models.clear()

    def scale(self, x: dict[str, float] | np.ndarray) -> np.ndarray:
        """Setpoints scaled to 0..1 over each decision's range."""
        if isinstance(x, dict):
            x = np.array([x[d.tag] for d in self.spec.decisions], dtype=float)
        lo = np.array([d.lo for d in self.spec.decisions])
        hi = np.array([d.hi for d in self.spec.decisions])
        return (np.asarray(x, float) - lo) / (hi - lo)

    def count(self, metric: str) -> int:
        """How many observations have a value of ``metric``."""
        return sum(1 for o in self.observations if math.isfinite(o.y.get(metric, math.nan)))

    def _fit(self, metric: str):
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern

        rows = [o for o in self.observations if math.isfinite(o.y.get(metric, math.nan))]
        if len(rows) < 2:
            return None
        X = np.array([self.scale(o.x) for o in rows])
        y = np.array([o.y[metric] for o in rows])
        scale = max(1e-9, float(np.abs(y).mean()))
        rel = np.array([self.twin_noise if o.source == "twin" else self.plant_noise for o in rows])
        # normalised by the spread seen, but never below the noise: a metric that has not moved yet
        # is known to within its noise, not to within one unit of whatever it is measured in
        mean, sd = float(y.mean()), max(float(y.std()), float(rel.min()) * scale, 1e-12)
        alpha = (rel * scale / sd) ** 2 + 1e-6  # noise variance in the normalised target's units
        kernel = ConstantKernel(1.0, (1e-2, 1e2)) * Matern(length_scale=[0.5] * X.shape[1],
                                                           length_scale_bounds=(0.05, 10.0), nu=2.5)
        if self.trend:
            from sklearn.gaussian_process.kernels import DotProduct

            kernel = kernel + ConstantKernel(0.1, (1e-3, 1e2)) * DotProduct(sigma_0=1.0, sigma_0_bounds="fixed")
        gp = GaussianProcessRegressor(kernel=kernel, alpha=alpha, normalize_y=False, n_restarts_optimizer=1,
                                      random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence notes on tiny data sets are expected
            gp.fit(X, (y - mean) / sd)
        return gp, mean, sd

    def predict(self, metric: str, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation of ``metric`` at the (unscaled) decision rows ``xs``."""
        xs = np.atleast_2d(np.asarray(xs, float))
        if metric not in self._models:
            self._models[metric] = self._fit(metric)
        fit = self._models[metric]
        if fit is None:
            vals = [o.y[metric] for o in self.observations if math.isfinite(o.y.get(metric, math.nan))]
            mu = float(vals[0]) if vals else math.nan
            sd = abs(mu) * 0.5 if vals else math.inf
            return np.full(len(xs), mu), np.full(len(xs), sd)
        gp, mean, scale = fit
        mu, sd = gp.predict(np.array([self.scale(x) for x in xs]), return_std=True)
        return mean + scale * mu, scale * sd
