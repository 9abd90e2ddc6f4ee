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


def test_pca_colours_come_from_the_svd_where_eigh_does_not_converge(monkeypatch):
    """LAPACK's eigh failed to converge on finite features in the app under a class's concurrent requests: the same directions come
    from the SVD, and features that are not finite are named."""
    import pytest

    rng = np.random.default_rng(2)
    features = rng.standard_normal((200, 16)) * np.array([10.0, 5.0, 2.0] + [0.1] * 13)
    expected = viz.pca_basis(features)

    def fails(*args, **kwargs):
        raise np.linalg.LinAlgError("Eigenvalues did not converge")

    monkeypatch.setattr(np.linalg, "eigh", fails)
    for ours, theirs in zip(viz.pca_basis(features), expected, strict=True):
        np.testing.assert_allclose(ours, theirs, atol=1e-9)
    features[3, 4] = np.nan
    with pytest.raises(ValueError, match="1 of the 3200 feature values to colour are not finite"):
        viz.pca_basis(features)


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


def test_the_embeddings_close_up_is_mae_s_in_size_and_shows_actual_then_predicted_colours():
    from demos import masks

    rng = np.random.default_rng(2)
    grid, block = masks.PatchGrid(4, 4, 16), masks.Block(top=1, left=1, height=2, width=3)
    ids = block.patch_ids(grid)
    actual = rng.standard_normal((grid.num_patches, 8))
    predicted = -actual[ids]  # other colours than the actual ones
    basis = viz.pca_basis(actual)
    view = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    pictures = viz.block_comparison_images(
        view, grid, block, actual=actual, predicted=predicted, basis=basis, patch_cosines=np.zeros(len(ids)),
        neighbour_ids=ids, mae_pasted=view, mae_reconstruction=view[::-1].copy())
    closeup = pictures["jepa_closeup"]
    assert closeup.shape == pictures["mae_closeup"].shape and closeup.dtype == np.uint8
    scale = viz.CLOSEUP_SIDE // (3 * 16)  # the block's longer side, scaled up as MAE's close-up is
    assert closeup.shape == (2 * 16 * scale, 2 * 3 * 16 * scale + 6, 3)
    half = 3 * 16 * scale
    left, gap, right = closeup[:, :half], closeup[:, half:half + 6], closeup[:, half + 6:]
    assert (gap == 255).all()  # the same white gap as MAE's close-up
    # Each patch of the block in its PCA colour: actual on the left, predicted on the right, row-major.
    side = 16 * scale
    for i, (a, p) in enumerate(zip(viz.pca_colors(actual[ids], basis), viz.pca_colors(predicted, basis), strict=True)):
        r, c = divmod(i, 3)
        assert (left[r * side:(r + 1) * side, c * side:(c + 1) * side] == a).all()
        assert (right[r * side:(r + 1) * side, c * side:(c + 1) * side] == p).all()
