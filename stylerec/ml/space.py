"""Style space: style embeddings reduced by PCA to the arm features preferences live in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# Arm feature layout: [bias, is_original, pc_1 .. pc_k]. The bias carries a shopper's
# overall click rate (needed for reward predictions, irrelevant to the choice); the
# indicator lets a shopper learn "I prefer unstyled photos"; styles live on the PCs.
BIAS, IS_ORIGINAL, FIRST_COMPONENT = 0, 1, 2
DEFAULT_MAX_COMPONENTS = 8
# A new style far outside the fitted styles would otherwise get an extreme score.
COMPONENT_CLIP = 3.0


@dataclass(frozen=True)
class StyleSpace:
    """Whitened PCA of L2-normalised style embeddings; projects any style, old or new."""

    embedding_mean: np.ndarray  # (D,) mean of the normalised embeddings the space was fitted on
    components: np.ndarray  # (k, D) principal axes divided by their std: outputs have unit variance

    @classmethod
    def fit(
        cls, style_embeddings: np.ndarray, *, max_components: int = DEFAULT_MAX_COMPONENTS
    ) -> StyleSpace:
        """Fit on the embeddings of the styles known now (one row per style)."""
        from sklearn.decomposition import PCA

        embeddings = _normalise(style_embeddings)
        n_styles, dim = embeddings.shape
        n_components = min(max_components, n_styles - 1, dim)
        if n_components < 1:
            return cls(embeddings.mean(axis=0) if n_styles else np.zeros(dim), np.zeros((0, dim)))
        pca = PCA(n_components=n_components, svd_solver="full").fit(embeddings)
        # Drop directions with no real spread (duplicate styles): whitening would blow them up.
        keep = pca.explained_variance_ > 1e-9 * max(pca.explained_variance_.max(), 1e-30)
        axes = pca.components_[keep] / np.sqrt(pca.explained_variance_[keep])[:, None]
        return cls(pca.mean_.astype(np.float64), axes.astype(np.float64))

    @property
    def n_components(self) -> int:
        return int(self.components.shape[0])

    @property
    def n_features(self) -> int:
        return FIRST_COMPONENT + self.n_components

    @property
    def feature_names(self) -> list[str]:
        return ["bias", "original"] + [f"pc{i + 1}" for i in range(self.n_components)]

    def style_features(self, style_embeddings: np.ndarray) -> np.ndarray:
        """Arm features (n, n_features) float32 of styles, including styles added after the fit."""
        embeddings = _normalise(style_embeddings)
        projected = (embeddings - self.embedding_mean) @ self.components.T
        features = np.zeros((embeddings.shape[0], self.n_features), dtype=np.float32)
        features[:, BIAS] = 1.0
        features[:, FIRST_COMPONENT:] = np.clip(projected, -COMPONENT_CLIP, COMPONENT_CLIP)
        return features

    def original_features(self) -> np.ndarray:
        """Arm features (n_features,) float32 of the unstyled photo."""
        features = np.zeros(self.n_features, dtype=np.float32)
        features[BIAS] = features[IS_ORIGINAL] = 1.0
        return features

    def arm_features(self, style_embeddings: np.ndarray) -> np.ndarray:
        """Arm table (1 + n, n_features): row 0 is the original photo, row i the i-th style."""
        return np.vstack([self.original_features()[None, :], self.style_features(style_embeddings)])

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (lists of floats); `from_dict` restores it exactly in float64."""
        return {
            "embedding_mean": self.embedding_mean.tolist(),
            "components": self.components.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StyleSpace:
        mean = np.asarray(data["embedding_mean"], dtype=np.float64)
        components = np.asarray(data["components"], dtype=np.float64).reshape(-1, mean.shape[0])
        return cls(mean, components)


def _normalise(style_embeddings: np.ndarray) -> np.ndarray:
    # VGG feature statistics scale with image contrast; direction is what describes a style.
    embeddings = np.atleast_2d(np.asarray(style_embeddings, dtype=np.float64))
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.where(norms > 0, norms, 1.0)
