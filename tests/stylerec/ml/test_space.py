"""Style space: PCA features of styles, the original arm, and new styles on day one."""

import numpy as np
import pytest

from stylerec.ml.simulate import synthetic_style_embeddings
from stylerec.ml.space import StyleSpace


@pytest.fixture(scope="module")
def embeddings():
    return synthetic_style_embeddings(8, dim=512, seed=0)


def test_styles_get_standardised_components_and_the_original_an_indicator(embeddings):
    space = StyleSpace.fit(embeddings)
    arms = space.arm_features(embeddings)

    assert space.n_components == 7  # 8 styles span 7 directions around their mean
    assert arms.shape == (9, 9) and arms.dtype == np.float32
    assert space.feature_names[:3] == ["bias", "original", "pc1"]
    np.testing.assert_array_equal(arms[0], [1, 1, 0, 0, 0, 0, 0, 0, 0])
    styles = arms[1:, 2:]
    np.testing.assert_allclose(styles.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(styles.std(axis=0, ddof=1), 1, atol=1e-4)
    assert (arms[1:, 1] == 0).all() and (arms[:, 0] == 1).all()


def test_max_components_caps_the_space(embeddings):
    assert StyleSpace.fit(embeddings, max_components=3).n_features == 5


def test_a_new_style_is_projected_without_refitting(embeddings):
    space = StyleSpace.fit(embeddings[:6])
    new_style = space.style_features(embeddings[6:7])[0]
    old_style = space.style_features(embeddings[:1])[0]

    assert np.isfinite(new_style).all()
    assert not np.allclose(new_style, old_style)
    # Embedding scale is not style: a brighter copy of a style lands on the same point.
    np.testing.assert_allclose(space.style_features(embeddings[:1] * 3.0)[0], old_style, atol=1e-5)


def test_duplicate_and_single_styles_do_not_blow_up(embeddings):
    duplicated = StyleSpace.fit(np.vstack([embeddings[:2], embeddings[:2]]))
    assert duplicated.n_components == 1
    assert np.abs(duplicated.arm_features(embeddings)).max() <= 3.0 + 1e-6

    single = StyleSpace.fit(embeddings[:1])
    assert single.n_features == 2
    np.testing.assert_array_equal(single.arm_features(embeddings[:1]), [[1, 1], [1, 0]])


def test_dict_round_trip_projects_identically(embeddings):
    space = StyleSpace.fit(embeddings)
    restored = StyleSpace.from_dict(space.to_dict())
    np.testing.assert_array_equal(restored.arm_features(embeddings), space.arm_features(embeddings))
