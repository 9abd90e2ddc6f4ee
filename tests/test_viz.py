"""viz: colour maps and PCA colouring on known values."""

import numpy as np

from demos import viz


def test_colormap_ends_and_clipping():
    colours = viz.colormap(np.array([-1.0, 0.0, 1.0, 2.0]), 0.0, 1.0)
    assert colours.shape == (4, 3) and colours.dtype == np.uint8
    assert (colours[0] == colours[1]).all() and (colours[2] == colours[3]).all()
    assert colours[0].sum() < colours[2].sum()  # dark for low, bright for high
    assert (viz.cosine_colors(np.array([0.0]))[0] == [221, 221, 221]).all()


def test_pca_finds_the_main_directions_whatever_the_shape():
    rng = np.random.default_rng(0)
    scales = np.array([10.0, 5.0, 2.0] + [0.1] * 13)
    for tokens in (8, 200):  # fewer and more tokens than dimensions take different code paths
        features = rng.standard_normal((tokens, 16)) * scales
        mean, directions, low, high = viz.pca_basis(features)
        np.testing.assert_allclose(np.abs(directions[:, :3]).round(), np.eye(3), atol=0.2 if tokens == 200 else 0.5)
        assert (low < high).all()
        colours = viz.pca_colors(features, (mean, directions, low, high))
        assert colours.shape == (tokens, 3) and colours.dtype == np.uint8
        assert np.array_equal(colours, viz.pca_colors(features, viz.pca_basis(features)))  # deterministic
