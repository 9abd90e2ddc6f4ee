"""The JEPA core: the context never sees the hidden region, targets are the training targets."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from demos import jepa, masks


@pytest.fixture(scope="module")
def vjepa(tiny_hub):
    loaded = jepa.load()
    return loaded.model, loaded.processor


def _clip(seed: int, frames: int, size: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (frames, size, size, 3), dtype=np.uint8)


def _block_tokens(layout, top, left, h, w, tubelets):
    grid = masks.PatchGrid(layout.rows, layout.cols, layout.patch_size)
    return masks.spatiotemporal_ids(grid, masks.block_ids(grid, top, left, h, w), tubelets)


def test_prediction_ignores_pixels_inside_the_hidden_region(vjepa):
    model, processor = vjepa
    size, p = model.config.crop_size, model.config.patch_size
    frames = _clip(0, 4, size)
    layout = jepa.TokenLayout.of(model.config, len(frames))
    target = _block_tokens(layout, 2, 3, 3, 2, range(layout.tubelets))
    context = masks.complement(layout.num_tokens, target)

    def prediction(clip):
        x = jepa.clip_tensor(processor, clip)
        ctx = jepa.context_features(model, x, context)
        return jepa.predict(model, ctx, context, target, layout.num_tokens)

    base = prediction(frames)
    inside = frames.copy()
    inside[:, 2 * p:5 * p, 3 * p:5 * p] = 255 - inside[:, 2 * p:5 * p, 3 * p:5 * p]  # repaint the hidden block
    assert torch.equal(prediction(inside), base)

    outside = frames.copy()
    outside[:, :p, :p] = 255 - outside[:, :p, :p]  # repaint one context patch
    assert not torch.allclose(prediction(outside), base)


def test_transformers_forward_with_masks_would_leak(vjepa):
    """Why jepa.context_features exists: the stock forward lets the context attend to the hidden block."""
    model, processor = vjepa
    size, p = model.config.crop_size, model.config.patch_size
    frames = _clip(1, 2, size)
    layout = jepa.TokenLayout.of(model.config, len(frames))
    target = _block_tokens(layout, 0, 0, 2, 2, [0])
    context = masks.complement(layout.num_tokens, target)
    ids = lambda a: [torch.as_tensor(a)[None]]  # noqa: E731

    def stock(clip):
        x = jepa.clip_tensor(processor, clip)
        with torch.no_grad():
            out = model(pixel_values_videos=x, context_mask=ids(context), target_mask=ids(target))
        return out.predictor_output.last_hidden_state

    changed = frames.copy()
    changed[:, :2 * p, :2 * p] = 0
    assert not torch.allclose(stock(frames), stock(changed))


def test_context_on_everything_matches_the_full_encoder(vjepa):
    model, processor = vjepa
    frames = _clip(2, 4, model.config.crop_size)
    x = jepa.clip_tensor(processor, frames)
    layout = jepa.TokenLayout.of(model.config, len(frames))
    full = model.encoder(pixel_values_videos=x).last_hidden_state
    ctx = jepa.context_features(model, x, np.arange(layout.num_tokens))
    torch.testing.assert_close(ctx, full, rtol=1e-4, atol=1e-4)
    targets = jepa.target_features(model, x)
    torch.testing.assert_close(targets, F.layer_norm(full, (full.shape[-1],)))
    assert targets.shape == (1, layout.num_tokens, model.config.hidden_size)


def test_token_layout_is_time_major(vjepa):
    model, _ = vjepa
    layout = jepa.TokenLayout.of(model.config, 16)
    assert (layout.tubelets, layout.rows, layout.cols) == (8, 8, 8)
    grid = masks.PatchGrid(layout.rows, layout.cols, layout.patch_size)
    ids = masks.spatiotemporal_ids(grid, masks.block_ids(grid, 1, 2, 1, 1), [0, 3])
    assert list(ids) == [1 * 8 + 2, 3 * 64 + 1 * 8 + 2]
    assert jepa.TokenLayout.of(model.config, 1).tubelets == 1


def test_untrained_mask_token_is_replaced(vjepa):
    model, _ = vjepa
    tokens = model.predictor.embeddings.mask_tokens
    saved = tokens.detach().clone()
    try:
        with torch.no_grad():
            tokens[1].zero_()
        assert jepa.use_trained_mask_token(model)
        assert torch.equal(tokens[1], tokens[0])
        assert not jepa.use_trained_mask_token(model)  # both trained now: nothing to do
    finally:
        with torch.no_grad():
            tokens.copy_(saved)


def test_cosine_rows_known_values():
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    b = np.array([[2.0, 0.0], [-1.0, -1.0], [1.0, 0.0]])
    np.testing.assert_allclose(jepa.cosine_rows(a, b), [1.0, -1.0, 0.0], atol=1e-6)


def test_the_published_mask_tokens_make_the_app_use_token_0(tiny_hub):
    """The replica stores the mask tokens as published (token 0 trained, 1..N zero); loading copies 0 into 1."""
    import transformers

    import checkpoints

    stored = transformers.VJEPA2Model.from_pretrained(checkpoints.get(jepa.CHECKPOINT).hub_id).predictor
    tokens = stored.embeddings.mask_tokens.detach()
    assert tokens[0].norm() > 0 and not tokens[1:].any()
    loaded = jepa.load()
    assert loaded.mask_token_copied is True
    used = loaded.model.predictor.embeddings.mask_tokens
    assert torch.equal(used[1], tokens[0]) and torch.equal(used[0], tokens[0])
