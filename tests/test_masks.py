"""Patch grids and masks: exact counts, reproducibility, token geometry."""

import math

import numpy as np
import pytest

from demos import masks
from demos.errors import UserError


@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.3, 0.5, 0.7, 0.75, 0.9, 0.95])
@pytest.mark.parametrize("num_patches", [196, 256])
def test_random_mask_count_and_reproducibility(ratio, num_patches):
    first = masks.random_hidden_ids(num_patches, ratio, seed=7)
    assert len(first) == num_patches - int(num_patches * (1 - ratio))
    assert np.array_equal(first, masks.random_hidden_ids(num_patches, ratio, seed=7))
    assert len(np.unique(first)) == len(first)
    if 0 < len(first) < num_patches:
        assert not np.array_equal(first, masks.random_hidden_ids(num_patches, ratio, seed=8))


def test_higher_ratio_hides_a_superset_for_one_seed():
    low = set(masks.random_hidden_ids(196, 0.5, 3))
    assert low <= set(masks.random_hidden_ids(196, 0.75, 3))


@pytest.mark.parametrize("bad", [-0.1, 0.96, 1.0, 5, math.nan, math.inf, "abc", None])
def test_bad_ratio_is_a_user_error(bad):
    with pytest.raises(UserError, match="mask ratio"):
        masks.validate_ratio(bad)


@pytest.mark.parametrize("bad", [-1, 1.5, 2**31, math.nan, "x", None])
def test_bad_seed_is_a_user_error(bad):
    with pytest.raises(UserError, match="seed"):
        masks.validate_seed(bad)


def test_seed_accepts_whole_floats():
    assert masks.validate_seed(3.0) == 3


def test_block_ids_row_major_and_bounds():
    grid = masks.PatchGrid(4, 5, 16)
    assert list(masks.block_ids(grid, 1, 2, 2, 2)) == [7, 8, 12, 13]
    assert len(masks.block_ids(grid, 0, 0, 4, 5)) == 20
    with pytest.raises(UserError):
        masks.block_ids(grid, 3, 0, 2, 1)
    with pytest.raises(UserError):
        masks.block_ids(grid, 0, 0, 5, 1)


def test_fit_block_keeps_blocks_inside():
    grid = masks.PatchGrid(8, 8, 16)
    assert masks.fit_block(grid, -3, 100, 3, 3) == masks.Block(0, 5, 3, 3)
    assert masks.fit_block(grid, 3, 3, 3, 3) == masks.Block(3, 3, 3, 3)
    assert masks.fit_block(grid, 5, 5, 20, 2) == masks.Block(0, 5, 8, 2)  # shrunk to the grid, then moved
    assert masks.fit_block(grid, 7, 2, 2, 2).pixel_box(16) == (96, 32, 128, 64)
