"""All drawing: patch masks, heat maps, PCA colours of embeddings, upscaling, blocks and boxes, and the
pictures each concept shows (sections below, in the order of the tabs).

Everything here takes and returns numpy arrays (images are HxWx3 uint8), so it is easy to test and
has no UI or model code in it. Blocks and tubes are `demos.masks.Block`s (a tube adds its tubelets).
"""

from __future__ import annotations

import logging

import numpy as np

from demos import masks

log = logging.getLogger(__name__)

# Anchor colours of matplotlib's "inferno" map (dark = low, bright yellow = high), interpolated below.
_INFERNO = np.array([
    [0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66], [245, 125, 21],
    [250, 193, 39], [252, 255, 164],
], dtype=np.float32)
# A diverging map for signed values such as cosine similarity: blue (-1), white (0), red (+1).
_COOL_WARM = np.array([[59, 76, 192], [221, 221, 221], [180, 4, 38]], dtype=np.float32)

HIDDEN_GREY = 128  # hidden patches are shown mid-grey, as in the MAE paper's figures


def colormap(values: np.ndarray, vmin: float, vmax: float, anchors: np.ndarray = _INFERNO) -> np.ndarray:
    """Map values (any shape) to uint8 RGB (shape + (3,)) with a piecewise-linear colour map."""
    span = max(vmax - vmin, 1e-12)
    t = np.clip((np.asarray(values, dtype=np.float32) - vmin) / span, 0, 1) * (len(anchors) - 1)
    low = np.floor(t).astype(int).clip(0, len(anchors) - 2)
    frac = (t - low)[..., None]
    return (anchors[low] * (1 - frac) + anchors[low + 1] * frac).round().astype(np.uint8)


def cosine_colors(values: np.ndarray) -> np.ndarray:
    """Cosine similarity in [-1, 1] as blue-white-red."""
    return colormap(values, -1.0, 1.0, _COOL_WARM)


def upscale(values: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling: (rows, cols[, C]) -> (rows*f, cols*f[, C]), each value a flat f x f square.

    Per-patch values become an image this way (factor = patch size), and small pictures grow without blur.
    """
    factor = int(factor)
    return values if factor == 1 else np.repeat(np.repeat(values, factor, axis=0), factor, axis=1)


def display_scale(size: int, min_side: int) -> int:
    """The whole factor that brings a `size`-pixel picture to at least `min_side` pixels."""
    return max(1, -(-min_side // size))


def patch_mask_image(mask_2d: np.ndarray, patch_size: int) -> np.ndarray:
    """(rows, cols) bool -> (H, W) bool pixel mask."""
    return upscale(mask_2d.astype(bool), patch_size)


def dim(image: np.ndarray, brightness: float = 0.35) -> np.ndarray:
    """A darker copy of the photo, the background of heat maps and highlights."""
    return (image.astype(np.float32) * brightness).astype(np.uint8)


def grey_out(image: np.ndarray, pixel_mask: np.ndarray, grey: int = HIDDEN_GREY) -> np.ndarray:
    """The image with the masked pixels replaced by flat grey."""
    out = image.copy()
    out[pixel_mask] = grey
    return out


def blend(base: np.ndarray, overlay: np.ndarray, alpha: float, where: np.ndarray | None = None) -> np.ndarray:
    """Alpha-blend overlay onto base, optionally only where a pixel mask is True."""
    mixed = (base.astype(np.float32) * (1 - alpha) + overlay.astype(np.float32) * alpha).round().astype(np.uint8)
    if where is None:
        return mixed
    out = base.copy()
    out[where] = mixed[where]
    return out


def draw_rectangle(image: np.ndarray, top: int, left: int, bottom: int, right: int,
                   color=(255, 220, 0), thickness: int = 2) -> np.ndarray:
    """Outline the pixel rectangle [top, bottom) x [left, right) (clipped to the image)."""
    out = image.copy()
    h, w = out.shape[:2]
    top, left = max(top, 0), max(left, 0)
    bottom, right = min(bottom, h), min(right, w)
    t = max(1, thickness)
    out[top:min(top + t, bottom), left:right] = color
    out[max(bottom - t, top):bottom, left:right] = color
    out[top:bottom, left:min(left + t, right)] = color
    out[top:bottom, max(right - t, left):right] = color
    return out


def draw_grid(image: np.ndarray, patch_size: int, color=(255, 255, 255), alpha: float = 0.25) -> np.ndarray:
    """Faint patch grid lines, so a learner sees what a 'patch' is."""
    lines = np.zeros(image.shape[:2], dtype=bool)
    lines[::patch_size, :] = True
    lines[:, ::patch_size] = True
    return blend(image, np.broadcast_to(np.array(color, np.uint8), image.shape), alpha, where=lines)


def pca_basis(features: np.ndarray, components: int = 3):
    """Mean and top principal directions of (N, D) features, plus the per-component range of the data.

    Fit once on one image's (or clip's) actual features; project predicted features with the same
    basis and range, so colours are comparable between actual and predicted.
    """
    features = np.asarray(features, dtype=np.float64)
    if not np.isfinite(features).all():
        raise ValueError(f"{int((~np.isfinite(features)).sum())} of the {features.size} feature values to colour are "
                         "not finite")
    mean = features.mean(axis=0)
    centred = features - mean
    directions = None
    if len(centred) > centred.shape[1]:
        # More tokens than dimensions (a clip: 2048 x 1024): the D x D covariance's eigenvectors are
        # the same directions as the SVD's, from a D x D problem instead of an N x D one.
        try:
            eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
            directions = eigenvectors[:, ::-1][:, :components].T
        except np.linalg.LinAlgError:  # seen on finite features under a class's concurrent requests: the SVD below
            log.warning("eigh did not converge on %s finite features; the PCA colours come from their SVD",
                        features.shape)
    if directions is None:
        # SVD of the (N, D) matrix: rows of vt are the principal directions.
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        directions = vt[:components]
    # Fix each direction's sign so colours do not flip between runs on the same data.
    signs = np.sign(directions[np.arange(len(directions)), np.abs(directions).argmax(axis=1)])
    directions = directions * signs[:, None]
    projected = centred @ directions.T
    low, high = np.percentile(projected, 1, axis=0), np.percentile(projected, 99, axis=0)
    return mean, directions, low, high


def pca_colors(features: np.ndarray, basis) -> np.ndarray:
    """(N, D) features -> (N, 3) uint8 colours under a basis from `pca_basis`."""
    mean, directions, low, high = basis
    projected = (np.asarray(features, dtype=np.float64) - mean) @ directions.T
    scaled = (projected - low) / np.maximum(high - low, 1e-12)
    rgb = np.zeros((len(scaled), 3))
    rgb[:, : scaled.shape[1]] = scaled
    return (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)


def outline_block(image: np.ndarray, block, patch_size: int, color=(255, 220, 0), thickness: int = 2) -> np.ndarray:
    """Outline a block of patches (a `masks.Block`)."""
    return draw_rectangle(image, *block.pixel_box(patch_size), color=color, thickness=thickness)


def grey_box(image: np.ndarray, box, alpha: float) -> np.ndarray:
    """Blend the pixel box (top, left, bottom, right) towards the hidden-patch grey."""
    top, left, bottom, right = box
    where = np.zeros(image.shape[:2], dtype=bool)
    where[top:bottom, left:right] = True
    return blend(image, np.full(image.shape, HIDDEN_GREY, dtype=np.uint8), alpha, where=where)


# ---------------------------------------------------------------------------------------------
# 6.1 Masked autoencoder
# ---------------------------------------------------------------------------------------------


def error_heat_map(view: np.ndarray, per_patch_mse: np.ndarray, patch_size: int, vmax: float) -> np.ndarray:
    """Hidden patches coloured by their error (inferno, 0..vmax); visible ones (NaN) a dim photo."""
    heat = upscale(colormap(np.nan_to_num(per_patch_mse), 0.0, vmax), patch_size)
    hidden_px = patch_mask_image(~np.isnan(per_patch_mse), patch_size)
    return np.where(hidden_px[..., None], heat, dim(view))


# ---------------------------------------------------------------------------------------------
# 6.2-6.3 Pixels vs embeddings
# ---------------------------------------------------------------------------------------------

BLOCK_COLOR = (255, 220, 0)  # yellow: the hidden block (and tube), everywhere
NEIGHBOUR_COLOR = (0, 230, 255)  # cyan: nearest-neighbour patches
OWN_PATCH_COLOR = (60, 220, 60)  # green: the nearest neighbour is the predicted patch itself
CLOSEUP_SIDE = 192  # the close-up of the block is scaled up (nearest) to about this many pixels


def view_with_block(view: np.ndarray, block, patch_size: int) -> np.ndarray:
    """The model's view with a faint patch grid and the block outlined (what the learner clicks on)."""
    y0, x0, y1, x1 = block.pixel_box(patch_size)
    shaded = view.copy()
    shaded[y0:y1, x0:x1] = blend(view[y0:y1, x0:x1], np.full_like(view[y0:y1, x0:x1], BLOCK_COLOR), 0.25)
    return outline_block(draw_grid(shaded, patch_size), block, patch_size)


def closeup(real: np.ndarray, painted: np.ndarray, block, patch_size: int) -> np.ndarray:
    """The block of `real` | the block of `painted` (MAE's pixels, or the predicted embeddings' PCA colours), side by
    side, scaled up (nearest) so blur is visible."""
    y0, x0, y1, x1 = block.pixel_box(patch_size)
    scale = max(1, CLOSEUP_SIDE // max(y1 - y0, x1 - x0))
    left, right = upscale(real[y0:y1, x0:x1], scale), upscale(painted[y0:y1, x0:x1], scale)
    gap = np.full((left.shape[0], 6, 3), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)


def block_comparison_images(view, grid, block, *, actual, predicted, basis, patch_cosines, neighbour_ids,
                            mae_pasted, mae_reconstruction) -> dict:
    """The 6.2-6.3 pictures, each with the block outlined, and two close-ups of the block: real | MAE's pixels, and
    actual | predicted embeddings in the same PCA colours.

    actual: (rows*cols, D) features of every patch; predicted: (block patches, D), row-major over the
    block; basis: `pca_basis` of `actual`; patch_cosines and neighbour_ids: one per block patch.
    """
    p = grid.patch_size
    ids = block.patch_ids(grid)
    patch_mask = lambda patch_ids: patch_mask_image(  # noqa: E731
        masks.hidden_mask(grid.num_patches, patch_ids).reshape(grid.rows, grid.cols), p)
    in_block = patch_mask(ids)
    as_image = lambda rgb: upscale(rgb.reshape(grid.rows, grid.cols, 3), p)  # noqa: E731
    outlined = lambda image: outline_block(image, block, p)  # noqa: E731

    actual_rgb = pca_colors(actual, basis)  # (rows*cols, 3)
    predicted_rgb = actual_rgb.copy()
    predicted_rgb[ids] = pca_colors(predicted, basis)

    cos_rgb = np.zeros((grid.num_patches, 3), np.uint8)
    cos_rgb[ids] = cosine_colors(patch_cosines)
    cosine_map = np.where(in_block[..., None], as_image(cos_rgb), dim(view))

    neighbours = dim(view)
    lit = patch_mask(neighbour_ids)
    neighbours[lit] = view[lit]
    for own, patch in zip(ids, neighbour_ids, strict=False):
        r, c = divmod(int(patch), grid.cols)
        color = OWN_PATCH_COLOR if patch == own else NEIGHBOUR_COLOR
        neighbours = draw_rectangle(neighbours, r * p, c * p, (r + 1) * p, (c + 1) * p, color=color, thickness=1)

    return {
        "view": view_with_block(view, block, p),
        "mae_pasted": outlined(mae_pasted),
        "mae_closeup": closeup(view, mae_reconstruction, block, p),
        "pca_actual": outlined(as_image(actual_rgb)),
        "pca_predicted": outlined(as_image(predicted_rgb)),
        "cosine_map": outlined(cosine_map),
        "neighbours": outlined(neighbours),
        "jepa_closeup": closeup(as_image(actual_rgb), as_image(predicted_rgb), block, p),
    }


CHART_TEXT = (30, 30, 30)
CHART_GRID = (215, 215, 215)
MAE_COLOR, NOISE_COLOR = (214, 96, 27), (130, 130, 130)  # pixels: MAE orange, the noise grey
TARGET_COLOR, PREDICTOR_COLOR = (33, 102, 172), (140, 45, 140)  # embeddings: the target blue, the predictor purple


def line_chart(x_labels: list[str], series: dict[str, list[float]], colours: list[tuple], *, title: str,
               y_range: tuple[float, float], size: tuple[int, int] = (330, 250)) -> np.ndarray:
    """A small line chart: one line with dots per series over evenly spaced x labels, its legend below."""
    from PIL import Image, ImageDraw

    width, height = size
    font = _font()
    left, right, top, bottom = 52, width - 14, 26, height - 28 - 16 * len(series)
    y0, y1 = y_range
    y_of = lambda v: bottom - (v - y0) / max(y1 - y0, 1e-12) * (bottom - top)  # noqa: E731
    x_of = lambda i: left + (i + 0.5) * (right - left) / len(x_labels)  # noqa: E731
    canvas = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    draw.text((left, 5), title, fill=CHART_TEXT, font=font)
    for value in np.linspace(y0, y1, 3):
        draw.line([(left, y_of(value)), (right, y_of(value))], fill=CHART_GRID)
        draw.text((4, y_of(value) - 7), f"{value:.3g}", fill=CHART_TEXT, font=font)
    for i, label in enumerate(x_labels):
        draw.text((x_of(i) - draw.textlength(label, font=font) / 2, bottom + 5), label, fill=CHART_TEXT, font=font)
    for k, ((name, values), colour) in enumerate(zip(series.items(), colours, strict=True)):
        points = [(x_of(i), y_of(v)) for i, v in enumerate(values)]
        draw.line(points, fill=colour, width=2)
        for x, y in points:
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], fill=colour)
        legend_y = bottom + 24 + 16 * k
        draw.line([(left, legend_y + 7), (left + 18, legend_y + 7)], fill=colour, width=3)
        draw.text((left + 24, legend_y), name, fill=CHART_TEXT, font=font)
    return np.asarray(canvas)


def noise_sweep_plot(labels: list[str], mae_mse, noise_mse, target_cosine, predictor_cosine) -> np.ndarray:
    """Side by side over the noise levels: MAE's pixel error and the noise in it; how far the JEPA target moves
    and the predictor's cosine with it."""
    pixel_top = max(max(mae_mse), max(noise_mse), 1e-4) * 1.15
    pixels = line_chart(labels, {"MAE's error (its target is noisy)": mae_mse, "the added noise itself": noise_mse},
                        [MAE_COLOR, NOISE_COLOR], title="Pixels: squared error in the block", y_range=(0, pixel_top))
    lowest = min(min(target_cosine), min(predictor_cosine), 0.0)
    embeddings = line_chart(labels, {"target, noisy vs clean": target_cosine, "predictor vs its target": predictor_cosine},
                            [TARGET_COLOR, PREDICTOR_COLOR], title="Embeddings: cosine in the block",
                            y_range=(-1.0 if lowest < 0 else 0.0, 1.0))
    gap = np.full((pixels.shape[0], 8, 3), 255, np.uint8)
    return np.concatenate([pixels, gap, embeddings], axis=1)


# ---------------------------------------------------------------------------------------------
# 6.4 Tube masking
# ---------------------------------------------------------------------------------------------


def shade_tube(frames: np.ndarray, tube, patch_size: int, hidden_frames) -> np.ndarray:
    """The clip with the tube shaded grey on the frames it hides and outlined thinly on the others."""
    box = tube.pixel_box(patch_size)
    hidden_frames = set(hidden_frames)
    out = []
    for index, frame in enumerate(frames):
        if index in hidden_frames:
            frame = draw_rectangle(grey_box(frame, box, 0.85), *box, BLOCK_COLOR, thickness=2)
        else:
            frame = draw_rectangle(frame, *box, (255, 255, 255), thickness=1)
        out.append(frame)
    return np.stack(out)


def tube_preview(frame: np.ndarray, tube, patch_size: int) -> np.ndarray:
    """A frame with the patch grid and, when given, the tube greyed and outlined."""
    frame = draw_grid(frame, patch_size)
    if tube is None:
        return frame
    box = tube.pixel_box(patch_size)
    return draw_rectangle(grey_box(frame, box, 0.6), *box, BLOCK_COLOR)


def _font():
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=13)
    except TypeError:  # older Pillow
        return ImageFont.load_default()


def tube_features_image(frames: np.ndarray, tube, patch_size: int, tubelet_size: int, actual, predicted,
                        basis) -> np.ndarray:
    """One picture, columns = hidden tubelets: the hidden pixels, the actual features, the predicted features.

    actual, predicted: (tubelets in tube * tube patches, D), time-major. Features are coloured by the
    top 3 principal components of `basis`, so the same colour means the same direction in both rows.
    """
    from PIL import Image, ImageDraw

    p, size = patch_size, tubelet_size
    columns = len(tube.tubelets)
    patch_px = max(2, min(32, 112 // max(tube.height, tube.width), 1400 // max(1, columns * tube.width)))
    cell_h, cell_w = tube.height * patch_px, tube.width * patch_px
    gap, margin_left, margin_top = 6, 84, 22
    rows = [("hidden pixels", None), ("actual", actual), ("predicted", predicted)]
    width = margin_left + columns * (cell_w + gap)
    height = margin_top + len(rows) * (cell_h + gap)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = _font()
    top, left, bottom, right = tube.pixel_box(p)
    per_tubelet_tokens = tube.height * tube.width
    for c, t in enumerate(tube.tubelets):
        x = margin_left + c * (cell_w + gap)
        label = f"t{t} (f{t * size}-{t * size + size - 1})" if cell_w >= 80 else f"t{t}"
        draw.text((x, 4), label, fill=(0, 0, 0), font=font)
        for r, (_row_label, feats) in enumerate(rows):
            y = margin_top + r * (cell_h + gap)
            if feats is None:
                crop = frames[t * size, top:bottom, left:right]
                cell = Image.fromarray(crop).resize((cell_w, cell_h), Image.Resampling.BILINEAR)
            else:
                block = feats[c * per_tubelet_tokens:(c + 1) * per_tubelet_tokens]
                colours = pca_colors(block, basis).reshape(tube.height, tube.width, 3)
                cell = Image.fromarray(upscale(colours, patch_px))
            canvas.paste(cell, (x, y))
    for r, (label, _) in enumerate(rows):
        draw.text((4, margin_top + r * (cell_h + gap) + cell_h // 2 - 7), label, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


PANEL_BACKGROUND = (32, 32, 36)  # dark, so the panel reads the same on a light or a dark page
PANEL_TEXT = (235, 235, 235)


def tube_panel_frames(frames: np.ndarray, tube, tubelet_size: int, actual, predicted, basis,
                      cosine) -> np.ndarray:
    """The prediction over time, for the video: beside each frame, a panel with the tube's actual and
    predicted features (PCA colours under `basis`, as in `tube_features_image`) and their cosine.

    frames: (T, S, S, 3), already shaded and scaled. actual, predicted: (hidden tubelets * tube patches, D),
    time-major. cosine: (hidden tubelets,) the predictor's mean cosine per hidden tubelet. On frames the tube
    does not hide the panel says so.
    """
    from PIL import Image, ImageDraw

    side = frames.shape[1]
    width = max(128, side // 2) // 2 * 2
    font = _font()
    line = 18
    box = min(width - 16, (side - 3 * line - 24) // 2)  # two feature squares, labels and the cosine fit
    per_tubelet = tube.height * tube.width
    cell = max(1, box // max(tube.height, tube.width))
    size = (tube.width * cell, tube.height * cell)
    panels = {}  # one panel per tubelet, reused by its frames

    def panel(t: int) -> np.ndarray:
        canvas = Image.new("RGB", (width, side), PANEL_BACKGROUND)
        draw = ImageDraw.Draw(canvas)
        if t not in tube.tubelets:
            draw.text((8, 8), f"tubelet {t}", fill=PANEL_TEXT, font=font)
            draw.text((8, 8 + line), "tube visible:", fill=PANEL_TEXT, font=font)
            draw.text((8, 8 + 2 * line), "nothing hidden", fill=PANEL_TEXT, font=font)
            return np.asarray(canvas)
        c = t - tube.first_tubelet
        y = 6
        for label, feats in ((f"actual, tubelet {t}", actual), ("predicted", predicted)):
            draw.text((8, y), label, fill=PANEL_TEXT, font=font)
            colours = pca_colors(feats[c * per_tubelet:(c + 1) * per_tubelet], basis)
            square = Image.fromarray(upscale(colours.reshape(tube.height, tube.width, 3), cell))
            canvas.paste(square, ((width - size[0]) // 2, y + line))
            y += line + box + 6
        value = float(cosine[c])
        draw.text((8, y), f"cosine {value:+.2f}", fill=PANEL_TEXT, font=font)
        bar = int(round((width - 16) * (value + 1) / 2))  # -1 empty, +1 full
        draw.rectangle([8, y + line, 8 + max(bar, 1), y + line + 6],
                       fill=tuple(int(v) for v in cosine_colors(np.array([value]))[0]))
        return np.asarray(canvas)

    out = []
    for index, frame in enumerate(frames):
        t = index // tubelet_size
        if t not in panels:
            panels[t] = panel(t)
        out.append(np.concatenate([frame, panels[t]], axis=1))
    return np.stack(out)
