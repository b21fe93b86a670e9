"""RUL models and bearing vibration features on small synthetic data."""

from __future__ import annotations

import numpy as np
import pytest

from axline.monitor.rul import CNNRUL, GBRUL, piecewise_rul, rul_features, select_informative, unit_windows
from axline.monitor.vibration import (
    BearingClassifier,
    bearing_features,
    defect_frequencies,
    envelope_spectrum,
    windows,
)

FS = 12_000.0
RPM = 1797.0


@pytest.fixture(autouse=True)
def _one_thread():
    """Tree boosting on one OpenMP thread: the test machine's few cores are shared."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        yield


def fleet(n_units: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run-to-failure units whose two sensors drift up as they wear, one constant sensor."""
    rng = np.random.default_rng(seed)
    X, U, C = [], [], []
    for u in range(n_units):
        life = int(rng.integers(120, 220))
        wear = np.exp(np.linspace(0, 3, life)) / np.exp(3)
        s1 = 10 + 5 * wear + 0.2 * rng.standard_normal(life)
        s2 = 3 - 2 * wear + 0.1 * rng.standard_normal(life)
        X.append(np.column_stack([s1, s2, np.full(life, 7.0)]))
        U.append(np.full(life, u + 1))
        C.append(np.arange(1, life + 1))
    return np.vstack(X), np.concatenate(U), np.concatenate(C)


def test_piecewise_rul_and_windows() -> None:
    units = np.array([1, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(piecewise_rul(units, cap=2), [2, 2, 1, 0, 1, 0])
    X = np.arange(12, dtype=float).reshape(6, 2)
    W, ends = unit_windows(X, units, window=3)
    assert W.shape == (3, 3, 2)  # unit 1: two windows; unit 2 (2 rows) padded to one window
    np.testing.assert_array_equal(ends, [2, 3, 5])
    np.testing.assert_array_equal(W[2][:, 0], [8, 8, 10])
    assert select_informative(np.column_stack([np.ones(5), np.arange(5), [0, 1, 0, 1, 0]])).tolist() == [1]


def test_gbrul_learns_wear_and_round_trips(tmp_path) -> None:
    X, U, C = fleet(24, 0)
    sensors = select_informative(X)
    assert sensors.tolist() == [0, 1]
    model = GBRUL(means=[5, 10], slopes=[10, 30], max_iter=40, learning_rate=0.1, min_samples_leaf=20)
    model.fit(X[:, sensors], U, C)
    Xt, Ut, Ct = fleet(15, 1)
    # cut each test unit 30 cycles before failure: true RUL 29
    keep = np.concatenate([np.flatnonzero(Ut == u)[:-29] for u in np.unique(Ut)])
    pred = model.predict_last(Xt[keep][:, sensors], Ut[keep], Ct[keep])
    assert np.sqrt(np.mean((pred - 29) ** 2)) < 15
    back = GBRUL.load(model.save(tmp_path / "rul"))
    np.testing.assert_array_equal(back.predict_last(Xt[keep][:, sensors], Ut[keep], Ct[keep]), pred)
    with pytest.raises(ValueError, match="'slopes' must be a list of integers in \\[1, 10000\\]"):
        GBRUL(slopes=[0])
    with pytest.raises(ValueError, match="'cap' must be a number"):
        GBRUL(cap=0)
    with pytest.raises(ValueError, match="NaN"):
        model.predict_last(np.full((3, 2), np.nan), np.ones(3), np.arange(3))


def test_gbrul_numpy_trees_match_sklearn() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    X, U, C = fleet(6, 2)
    model = GBRUL(means=[5], slopes=[5, 20], max_iter=20, min_samples_leaf=40).fit(X[:, :2], U, C)
    F, ends = rul_features((X[:, :2] - model.mean_) / model.std_, U, C, means=(5,), slopes=(5, 20))
    ref = HistGradientBoostingRegressor(max_iter=20, learning_rate=0.05, max_leaf_nodes=15, min_samples_leaf=40,
                                        l2_regularization=1.0, early_stopping=False, random_state=0)
    ref.fit(F, piecewise_rul(U, 130.0)[ends])
    np.testing.assert_allclose(model._predict_features(F), np.clip(ref.predict(F), 0, 130), atol=1e-9)


def test_rul_features_use_only_the_past_and_fit_slopes() -> None:
    X, U, C = fleet(3, 4)
    Z = X[:, :2]
    F, rows = rul_features(Z, U, C, alphas=(0.2,), means=(4,), slopes=(6,))
    assert F.shape == (len(U), 2 * 3 + 1) and rows.tolist() == list(range(len(U)))
    first = np.flatnonzero(U == U[0])
    for cut in (1, 2, 5, 40):  # the unit cut at `cut` cycles gives the same last row as the full history
        Fc, rc = rul_features(Z[first[:cut]], U[first[:cut]], C[first[:cut]], alphas=(0.2,), means=(4,),
                              slopes=(6,), last_only=True)
        np.testing.assert_allclose(Fc[0], F[first[cut - 1]], atol=1e-12)
        assert rc.tolist() == [cut - 1]
    i = first[40]
    np.testing.assert_allclose(F[i, 2:4], Z[i - 3 : i + 1].mean(axis=0))
    np.testing.assert_allclose(F[i, 4:6], [np.polyfit(np.arange(6), Z[i - 5 : i + 1, j], 1)[0] for j in (0, 1)])
    assert F[i, 6] == C[i]
    assert np.all(F[first[0], 4:6] == 0.0)  # one cycle: no slope yet


@pytest.mark.slow
def test_cnn_numpy_inference_matches_torch(tmp_path) -> None:
    torch = pytest.importorskip("torch")
    X, U, _ = fleet(6, 3)
    model = CNNRUL(window=8, channels=4, epochs=1, ensemble=1, threads=1).fit(X[:, :2], U)
    W, _ = unit_windows((X[:, :2] - model.mean_) / model.std_, U, 8)
    net = model.nets_[0]
    H = torch.from_numpy(W.transpose(0, 2, 1).astype(np.float64))
    for i in (1, 2, 3):
        w = torch.from_numpy(net[f"c{i}w"])
        H = torch.relu(torch.nn.functional.conv1d(H, w, torch.from_numpy(net[f"c{i}b"]), padding=w.shape[2] // 2))
    H = torch.relu(H.flatten(1) @ torch.from_numpy(net["f1w"]).T + torch.from_numpy(net["f1b"]))
    ref = (H @ torch.from_numpy(net["f2w"]).T + torch.from_numpy(net["f2b"]))[:, 0].numpy() * 125.0
    np.testing.assert_allclose(model.predict_windows(W), np.clip(ref, 0, 125), atol=1e-6)
    back = CNNRUL.load(model.save(tmp_path / "cnn"))
    np.testing.assert_array_equal(back.predict_windows(W), model.predict_windows(W))


def impacts(freq: float, seconds: float, seed: int) -> np.ndarray:
    """Noise plus a 3.5 kHz resonance struck at ``freq`` Hz (a bearing defect), or none if 0."""
    rng = np.random.default_rng(seed)
    n = int(FS * seconds)
    x = 0.05 * rng.standard_normal(n)
    if freq > 0:
        t = np.arange(200) / FS
        ring = np.sin(2 * np.pi * 3500 * t) * np.exp(-t * 800)
        for start in (np.arange(0, seconds, 1 / freq) * FS).astype(int):
            seg = ring[: n - start]
            x[start : start + seg.size] += seg
    return x


def test_envelope_spectrum_peaks_at_the_defect_frequency() -> None:
    f = defect_frequencies(RPM)
    assert f["bpfo"] == pytest.approx(3.5848 * RPM / 60)
    W = windows(impacts(f["bpfo"], 1.0, 0), 8192)
    freqs, env = envelope_spectrum(W, FS)
    band = (freqs > 20) & (freqs < 400)
    peak = freqs[band][np.argmax(env[0, band])]
    assert abs(peak - f["bpfo"]) < 2.0


def test_bearing_features_and_classifier_tell_faults_apart(tmp_path) -> None:
    f = defect_frequencies(RPM)
    kinds = {"normal": 0.0, "inner_race": f["bpfi"], "outer_race": f["bpfo"]}
    Ftr, ytr, Fte, yte = [], [], [], []
    for i, (name, freq) in enumerate(kinds.items()):
        x = impacts(freq, 2.0, i)
        cut = int(0.6 * x.size)
        a, names = bearing_features(windows(x[:cut], 2048, 1024), FS, RPM)
        b, _ = bearing_features(windows(x[cut:], 2048), FS, RPM)
        Ftr.append(a)
        Fte.append(b)
        ytr += [name] * len(a)
        yte += [name] * len(b)
        if name == "outer_race":
            col = names.index("env_bpfo_1x")
            other = names.index("env_bpfi_1x")
            assert np.median(b[:, col]) > np.median(b[:, other]) + 1.0
    clf = BearingClassifier().fit(np.vstack(Ftr), ytr)
    pred = clf.predict(np.vstack(Fte))
    assert np.mean(pred == np.array(yte)) == 1.0
    back = BearingClassifier.load(clf.save(tmp_path / "clf"))
    np.testing.assert_array_equal(back.predict(np.vstack(Fte)), pred)
    with pytest.raises(ValueError, match="size must be >= 16"):
        windows(np.zeros(100), 8)
