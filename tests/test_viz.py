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


def test_tube_panel_shows_actual_and_predicted_colours_and_the_cosine_beside_each_hidden_frame():
    from demos.compute.tubes import Tube

    rng = np.random.default_rng(1)
    tube = Tube(top=1, left=2, height=2, width=3, first_tubelet=1, last_tubelet=2)  # hides frames 2-5 of 8
    actual = rng.standard_normal((2 * 6, 16))
    predicted = -actual  # the opposite direction: other colours, cosine -1
    basis = viz.pca_basis(actual)
    frames = np.zeros((8, 256, 256, 3), np.uint8)
    out = viz.tube_panel_frames(frames, tube, 2, actual, predicted, basis, np.array([0.5, -1.0]))
    assert out.shape[:3] == (8, 256, 256 + 128) and out.dtype == np.uint8
    assert np.array_equal(out[:, :, :256], frames)  # the clip itself is untouched
    panels = out[:, :, 256:]
    assert np.array_equal(panels[2], panels[3]) and not np.array_equal(panels[3], panels[4])  # one panel per tubelet
    assert not np.array_equal(panels[0], panels[2])  # frames 0-1 are visible: a different panel
    # Tubelet 1's actual colours appear in its panel, exactly (nearest upscaling); the predicted ones differ.
    colours = {tuple(c) for c in viz.pca_colors(actual[:6], basis)}
    predicted_colours = {tuple(c) for c in viz.pca_colors(predicted[:6], basis)}
    in_panel = {tuple(c) for c in panels[2].reshape(-1, 3)}
    assert colours <= in_panel and predicted_colours <= in_panel
    # The cosine bar is drawn in the cosine's colour: +0.5 for tubelet 1, -1 (blue) for tubelet 2.
    for frame, value in ((2, 0.5), (4, -1.0)):
        assert tuple(viz.cosine_colors(np.array([value]))[0]) in {tuple(c) for c in panels[frame].reshape(-1, 3)}
