"""Isolation forest trained with scikit-learn, scored with NumPy on exported trees (``iforest``)."""

from __future__ import annotations

import numpy as np

from axline.monitor.detectors.base import StatelessDetector


class IsolationForestDetector(StatelessDetector):
    """Isolation forest (scikit-learn training; trees exported to arrays, NumPy scoring).

    The score is the forest's anomaly score s in (0, 1) (0.5 = average; near 1 = isolated fast).
    Contributions are the squared robust z-scores scaled to the score (a forest gives no additive
    split of its score).

    >>> normal = np.random.default_rng(0).normal(0.0, 1.0, (500, 2))
    >>> det = IsolationForestDetector(n_trees=30).fit(normal)
    >>> s = det.score([[0.0, 0.0], [8.0, -8.0]])
    >>> bool(s[0] < 0.5 < s[1])
    True
    >>> bool(np.isclose(det.score_one([8.0, -8.0]), s[1]))  # the streaming path gives the same number
    True
    """

    name = "iforest"
    PARAMS = {"n_trees": (100, 1, 2000, True), "max_samples": (256, 2, 100_000, True), "seed": (0, 0, 2**31 - 1, True)}

    def _fit(self, Z: np.ndarray) -> None:
        from sklearn.ensemble import IsolationForest

        n_sub = min(int(self.params["max_samples"]), Z.shape[0])
        forest = IsolationForest(
            n_estimators=int(self.params["n_trees"]), max_samples=n_sub, random_state=int(self.params["seed"])
        ).fit(Z)
        feats, thrs, lefts, rights, depths, offs = [], [], [], [], [], [0]
        for est in forest.estimators_:
            t = est.tree_
            # expected path length below each leaf (sklearn's average_path_length correction)
            n_node = t.n_node_samples.astype(np.float64)
            depth = self._node_depths(t.children_left, t.children_right)
            leaf_len = depth + self._c(n_node)
            feats.append(t.feature.astype(np.int32))
            thrs.append(t.threshold.astype(np.float64))
            lefts.append(t.children_left.astype(np.int32))
            rights.append(t.children_right.astype(np.int32))
            depths.append(leaf_len)
            offs.append(offs[-1] + t.node_count)
        self._arrays = {
            "feature": np.concatenate(feats),
            "thr": np.concatenate(thrs),
            "left": np.concatenate(lefts),
            "right": np.concatenate(rights),
            "plen": np.concatenate(depths),
            "offsets": np.array(offs, dtype=np.int64),
            "cn": np.array([self._c(np.array([float(n_sub)]))[0]]),
        }
        self._lists = None

    @staticmethod
    def _c(n: np.ndarray) -> np.ndarray:
        """Average path length of an unsuccessful BST search among n points."""
        n = np.asarray(n, dtype=np.float64)
        out = np.zeros_like(n)
        big = n > 2
        out[n == 2] = 1.0
        out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
        return out

    @staticmethod
    def _node_depths(left: np.ndarray, right: np.ndarray) -> np.ndarray:
        depth = np.zeros(len(left))
        stack = [0]
        while stack:
            i = stack.pop()
            if left[i] >= 0:
                depth[left[i]] = depth[right[i]] = depth[i] + 1
                stack.extend([left[i], right[i]])
        return depth

    def _raw(self, Z: np.ndarray) -> np.ndarray:
        a = self._arrays
        offs = a["offsets"]
        total = np.zeros(Z.shape[0])
        rows = np.arange(Z.shape[0])
        for t in range(len(offs) - 1):
            node = np.full(Z.shape[0], offs[t], dtype=np.int64)
            active = a["left"][node] >= 0
            while np.any(active):
                nd = node[active]
                go_left = Z[rows[active], a["feature"][nd]] <= a["thr"][nd]
                node[active] = offs[t] + np.where(go_left, a["left"][nd], a["right"][nd])
                active = a["left"][node] >= 0
            total += a["plen"][node]
        mean_len = total / (len(offs) - 1)
        return 2.0 ** (-mean_len / a["cn"][0])

    def _raw_one(self, z: np.ndarray) -> float:
        """One sample: plain-Python traversal (far faster than array code on a single row)."""
        a = self._arrays
        lists = getattr(self, "_lists", None)
        if lists is None:
            lists = self._lists = tuple(a[k].tolist() for k in ("feature", "thr", "left", "right", "plen", "offsets"))
        feature, thr, left, right, plen, offs = lists
        zl = z.tolist()
        total = 0.0
        for t in range(len(offs) - 1):
            o = offs[t]
            node = o
            while left[node] >= 0:
                node = o + (left[node] if zl[feature[node]] <= thr[node] else right[node])
            total += plen[node]
        return float(2.0 ** (-(total / (len(offs) - 1)) / a["cn"][0]))

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        super()._load_arrays(arrays)
        self._lists = None

    def _contrib(self, Z: np.ndarray) -> np.ndarray:
        z2 = Z**2
        s = z2.sum(axis=1, keepdims=True)
        return np.where(s > 0, z2 / np.where(s > 0, s, 1.0), 1.0 / Z.shape[1]) * self._raw(Z)[:, None]
