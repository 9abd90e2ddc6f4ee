"""ViT-MAE at another size: the position tables are the checkpoint's own 2-D sin-cos formula on the new grid.

The reference is MAE's original code (facebookresearch/mae `util/pos_embed.py`, below as it is there but for
numpy's removed `np.float`) and the same weights built for the new size.
"""

import copy
import logging

import numpy as np
import pytest
import torch
import transformers

import checkpoints
from demos import mae_positions, masks
from demos.compute import mae


def get_2d_sincos_pos_embed(embed_dim, grid_size, cls_token=False):
    """facebookresearch/mae util/pos_embed.py: the tables MAE was trained with."""
    grid_h = np.arange(grid_size, dtype=np.float32)
    grid_w = np.arange(grid_size, dtype=np.float32)
    grid = np.meshgrid(grid_w, grid_h)  # here w goes first
    grid = np.stack(grid, axis=0)
    grid = grid.reshape([2, 1, grid_size, grid_size])
    emb_h = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[0])  # (H*W, D/2)
    emb_w = get_1d_sincos_pos_embed_from_grid(embed_dim // 2, grid[1])  # (H*W, D/2)
    pos_embed = np.concatenate([emb_h, emb_w], axis=1)
    if cls_token:
        pos_embed = np.concatenate([np.zeros([1, embed_dim]), pos_embed], axis=0)
    return pos_embed


def get_1d_sincos_pos_embed_from_grid(embed_dim, pos):
    omega = np.arange(embed_dim // 2, dtype=np.float64)
    omega /= embed_dim / 2.0
    omega = 1.0 / 10000**omega  # (D/2,)
    out = np.einsum("m,d->md", pos.reshape(-1), omega)  # (M, D/2), outer product
    return np.concatenate([np.sin(out), np.cos(out)], axis=1)  # (M, D)


def mae_table(dim: int, side: int) -> torch.Tensor:
    return torch.from_numpy(get_2d_sincos_pos_embed(dim, side, cls_token=True)).float()[None]


@pytest.fixture(scope="module")
def loaded(tiny_hub):
    return mae.load("vit-mae-base")  # 224 px, 16-px patches: a 14x14 grid; the replica stores MAE's tables


def built_for(model, size: int):
    """The same weights in a ViT-MAE built for `size`, its tables from MAE's own code for that grid."""
    config = copy.deepcopy(model.config)
    config.image_size = size
    reference = transformers.ViTMAEForPreTraining(config).eval()
    tables = ("vit.embeddings.position_embeddings", "decoder.decoder_pos_embed")
    missing, unexpected = reference.load_state_dict(
        {k: v for k, v in model.state_dict().items() if k not in tables}, strict=False)
    assert sorted(missing) == sorted(tables) and not unexpected
    side = size // config.patch_size
    with torch.no_grad():
        reference.vit.embeddings.position_embeddings.copy_(mae_table(config.hidden_size, side))
        reference.decoder.decoder_pos_embed.copy_(mae_table(config.decoder_hidden_size, side))
    return reference


def forward_with_mask(model, pixels, hidden, **kwargs):
    """transformers' own ViTMAEForPreTraining forward, its noise and ratio chosen to hide exactly `hidden`."""
    ratio = (hidden.sum() - 0.5) / hidden.size  # it keeps the int(L * (1 - ratio)) lowest-noise patches
    saved, model.config.mask_ratio = model.config.mask_ratio, ratio  # this test's own use of the model
    try:
        with torch.inference_mode():
            out = model(pixels, noise=torch.from_numpy(hidden.astype(np.float32))[None], **kwargs)
    finally:
        model.config.mask_ratio = saved
    assert np.array_equal(out.mask[0].numpy().astype(bool), hidden)
    return out


def hidden_at(side: int, seed: int = 4) -> np.ndarray:
    return masks.hidden_mask(side * side, masks.random_hidden_ids(side * side, 0.75, seed))


def cell(index, side: int) -> np.ndarray:
    return np.stack(np.divmod(np.asarray(index), side), axis=-1)


# --- the formula -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dim, side", [(32, 14), (768, 16), (512, 14)])
def test_the_column_first_layout_is_maes_own_code(dim, side):
    np.testing.assert_allclose(mae_positions.sincos_table(side, side, dim, mae_positions.COLUMN_FIRST).numpy(),
                               get_2d_sincos_pos_embed(dim, side), atol=1e-12)
    row_first = mae_positions.sincos_table(side, side, dim, mae_positions.ROW_FIRST)
    assert torch.equal(row_first, transformers.models.vit_mae.modeling_vit_mae.build_2d_sinusoidal_position_embedding(
        side, side, dim, dtype=torch.float64))
    assert not torch.allclose(row_first, mae_positions.sincos_table(side, side, dim, mae_positions.COLUMN_FIRST))


@pytest.mark.parametrize("layout", [mae_positions.COLUMN_FIRST, mae_positions.ROW_FIRST])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_the_stored_layout_is_recognised_in_every_dtype(layout, dtype):
    table = torch.cat([torch.zeros(1, 8), mae_positions.sincos_table(14, 14, 8, layout).float()])[None].to(dtype)
    assert mae_positions.stored_layout(table) == layout


@pytest.mark.parametrize("table", [torch.zeros(1, 197, 32), torch.randn(1, 197, 32), torch.randn(1, 201, 32)])
def test_a_table_that_follows_neither_formula_is_interpolated(table):
    assert mae_positions.stored_layout(table) == mae_positions.INTERPOLATED
    if table.shape[1] == 197:
        resized = mae_positions.for_grid(table, mae_positions.INTERPOLATED, 16, 16)
        assert resized.shape == (1, 257, 32) and torch.equal(resized[:, :1], table[:, :1])


def test_the_replicas_store_maes_tables_and_the_check_at_load_finds_them(loaded):
    assert loaded.position_layouts == mae_positions.Layouts(mae_positions.COLUMN_FIRST, mae_positions.COLUMN_FIRST)
    model = loaded.model
    torch.testing.assert_close(model.vit.embeddings.position_embeddings, mae_table(model.config.hidden_size, 14))
    torch.testing.assert_close(model.decoder.decoder_pos_embed, mae_table(model.config.decoder_hidden_size, 14))


def test_the_checkpoints_own_grid_keeps_its_stored_tables(loaded):
    model = loaded.model
    encoder, decoder = loaded.position_layouts.tables(model, 14, 14)
    assert encoder is model.vit.embeddings.position_embeddings and decoder is model.decoder.decoder_pos_embed


def test_the_fallback_is_transformers_2d_interpolation(loaded):
    """The encoder's interpolation in transformers is a correct 2-D one: the fallback gives the same table."""
    model = loaded.model
    table = model.vit.embeddings.position_embeddings
    expected = model.vit.embeddings.interpolate_pos_encoding(torch.zeros(1, 257, table.shape[-1]), 256, 256)
    torch.testing.assert_close(mae_positions.interpolate(table, 16, 16), expected)


def test_a_table_that_matches_neither_is_said_in_the_log(loaded, caplog):
    model = loaded.model
    saved = model.decoder.decoder_pos_embed.detach().clone()
    try:
        with torch.no_grad():
            model.decoder.decoder_pos_embed[:, 1:] = torch.randn_like(saved[:, 1:])
        loaded.position_layouts = None
        with caplog.at_level(logging.INFO, logger="demos.compute.mae"):
            assert mae.load("vit-mae-base").position_layouts == mae_positions.Layouts(mae_positions.COLUMN_FIRST,
                                                                                     mae_positions.INTERPOLATED)
        assert "decoder's stored position table follows neither" in caplog.text
        assert "encoder's position table is 2-D sin-cos (column_first)" in caplog.text
    finally:
        with torch.no_grad():
            model.decoder.decoder_pos_embed.copy_(saved)
        loaded.position_layouts = None
        mae.load("vit-mae-base")
    assert loaded.position_layouts.decoder == mae_positions.COLUMN_FIRST


# --- why: transformers' decoder interpolation scrambles the grid ---------------------------------------


def test_transformers_decoder_interpolation_moves_positions_to_other_cells(loaded):
    """Why `mae_positions` exists: `ViTMAEDecoder.interpolate_pos_encoding` stretches the flattened 14x14 table to
    256 entries along one axis; each entry's nearest row of the exact 16x16 table is, for most, another cell."""
    model = loaded.model
    dim = model.config.decoder_hidden_size
    stretched = model.decoder.interpolate_pos_encoding(torch.zeros(1, 257, dim))[0, 1:]
    exact = mae_positions.sincos_table(16, 16, dim, loaded.position_layouts.decoder).float()
    nearest = torch.cdist(stretched, exact).argmin(dim=1).numpy()
    off_by = np.abs(cell(nearest, 16) - cell(np.arange(256), 16)).max(axis=1)
    assert (off_by > 1).sum() > 128  # more than half the positions land over a cell away (a 512-wide table: 242)
    ours = loaded.position_layouts.tables(model, 16, 16)[1][0, 1:]
    assert torch.cdist(ours, exact).argmin(dim=1).tolist() == list(range(256))


def test_mae_at_256_px_is_mae_built_for_256_px(loaded):
    """The Space's MAE on V-JEPA 2's 256-px view equals the same weights built for 256 px (transformers' own
    forward, MAE's own tables); transformers' interpolating forward does not."""
    model = loaded.model
    reference = built_for(model, 256)
    hidden = hidden_at(16)
    pixels = torch.randn(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        logits, loss = mae.masked_forward(model, pixels, hidden, loaded.position_layouts)
    expected = forward_with_mask(reference, pixels, hidden)
    torch.testing.assert_close(logits, expected.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(loss, expected.loss, rtol=1e-4, atol=1e-6)

    stretched = forward_with_mask(model, pixels, hidden, interpolate_pos_encoding=True)
    cosines = torch.nn.functional.cosine_similarity(stretched.logits[0, hidden], expected.logits[0, hidden], dim=-1)
    assert cosines.min() < 0.9  # the hidden patches' logits point elsewhere


def test_reconstruct_at_256_px_runs_the_exact_tables(loaded, example_image):
    result = mae.reconstruct(example_image, "vit-mae-base", hidden_ids=masks.block_ids(masks.PatchGrid(16, 16, 16),
                                                                                       4, 5, 3, 2), image_size=256)
    pixels = loaded.processor(images=result.model_view, do_resize=False, return_tensors="pt")["pixel_values"]
    hidden = masks.hidden_mask(256, result.hidden_ids)
    expected = forward_with_mask(built_for(loaded.model, 256), pixels, hidden)
    assert result.model_loss == pytest.approx(float(expected.loss), rel=1e-4)


def test_the_default_is_the_check_itself(loaded):
    """`masked_forward` without layouts checks the model's tables on the spot: the same result."""
    model = loaded.model
    pixels, hidden = torch.randn(1, 3, 256, 256), hidden_at(16, seed=1)
    with torch.inference_mode():
        given = mae.masked_forward(model, pixels, hidden, loaded.position_layouts)[0]
        checked = mae.masked_forward(model, pixels, hidden)[0]
    assert torch.equal(given, checked)
    assert checkpoints.load("vit-mae-base") is loaded
