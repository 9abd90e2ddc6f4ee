"""The VQA head's bridge: frozen V-JEPA 2 video tokens -> a few "visual words" for a language model.

LLaVA-1.5 connects a frozen vision encoder to a frozen-at-first LLM with a 2-layer MLP applied to
every visual token. A V-JEPA 2 clip gives far more tokens than a small LLM on a CPU can read
quickly (16 frames at 256 px: 8 tubelets x 16 x 16 patches = 2048 tokens), so the projector first
average-pools the token grid to a fixed (k_t, k_h, k_w) grid, keeping time and space apart, and
then runs the MLP on each pooled token. V-JEPA 2 encodes positions with RoPE only, so a token's
features say what is there but not where or when; a learned embedding of each pooled (t, h, w)
cell, added before the MLP, tells the LLM which moment and place each visual token stands for
(the job M-RoPE does in Qwen2-VL). It starts at zero, i.e. as the plain LLaVA projector.

The module is saved and loaded with huggingface_hub's `PyTorchModelHubMixin`: the constructor's
arguments are plain ints and strings, which the mixin writes to `config.json` beside the weights.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn


def pool_video_tokens(
    features: torch.Tensor, grid: tuple[int, int, int], pooled_grid: tuple[int, int, int]
) -> torch.Tensor:
    """Average-pool time-major video tokens on their (T', Hp, Wp) grid.

    Args:
        features: (B, N, D) encoder tokens, token id `t*(Hp*Wp) + h*Wp + w`, N = T'*Hp*Wp.
        grid: (T', Hp, Wp): tubelets (frames / 2) and patches per column and per row.
        pooled_grid: (k_t, k_h, k_w), the grid to pool to.

    Returns:
        (B, k_t*k_h*k_w, D) pooled tokens, in the same time-major order: earlier tubelets first.
    """
    batch, num_tokens, dim = features.shape
    t, h, w = grid
    if t * h * w != num_tokens:
        raise ValueError(f"grid {grid} holds {t * h * w} tokens, the features have {num_tokens}")
    # (B, N, D) -> (B, D, T', Hp, Wp): the token id order is exactly row-major over (t, h, w).
    volume = features.transpose(1, 2).reshape(batch, dim, t, h, w)
    pooled = F.adaptive_avg_pool3d(volume, pooled_grid)
    return pooled.flatten(2).transpose(1, 2)


class VideoProjector(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="pytorch",
    tags=["v-jepa-2", "video-question-answering", "llava-style-projector"],
    repo_url="https://huggingface.co/facebook/vjepa2-vitl-fpc64-256",
):
    """Pool frozen V-JEPA 2 tokens to a fixed grid, then map them into an LLM's embedding space.

    Args:
        vision_hidden_size: D_vision, the encoder's width (1024 for ViT-L).
        llm_hidden_size: D_llm, the LLM's embedding width (896 for Qwen2.5-0.5B).
        patches_per_side: Hp = Wp = crop_size / patch_size, used to derive the grid when a call
            gives none (16 for 256-pixel crops and 16-pixel patches).
        pooled_frames, pooled_height, pooled_width: (k_t, k_h, k_w); the LLM sees
            `num_visual_tokens = k_t * k_h * k_w` tokens per clip.
        mlp_hidden_size: the MLP's inner width; 0 means `llm_hidden_size`, as LLaVA-1.5 does.
        encoder_id, llm_id: the checkpoints it was trained against; metadata only, saved in the config
            so that whoever loads the projector can check that it is paired with the right models.
    """

    def __init__(
        self,
        vision_hidden_size: int = 1024,
        llm_hidden_size: int = 896,
        patches_per_side: int = 16,
        pooled_frames: int = 4,
        pooled_height: int = 4,
        pooled_width: int = 4,
        mlp_hidden_size: int = 0,
        encoder_id: str = "",
        llm_id: str = "",
    ):
        super().__init__()
        self.vision_hidden_size = vision_hidden_size
        self.llm_hidden_size = llm_hidden_size
        self.patches_per_side = patches_per_side
        self.pooled_grid = (pooled_frames, pooled_height, pooled_width)
        self.encoder_id = encoder_id
        self.llm_id = llm_id
        inner = mlp_hidden_size or llm_hidden_size
        self.position_embedding = nn.Parameter(torch.zeros(self.num_visual_tokens, vision_hidden_size))
        # LLaVA-1.5's projector: Linear -> GELU -> Linear, on each token separately.
        self.mlp = nn.Sequential(
            nn.Linear(vision_hidden_size, inner),
            nn.GELU(),
            nn.Linear(inner, llm_hidden_size),
        )

    @property
    def num_visual_tokens(self) -> int:
        """K, the number of visual tokens the LLM reads per clip."""
        k_t, k_h, k_w = self.pooled_grid
        return k_t * k_h * k_w

    def grid_for(self, num_tokens: int) -> tuple[int, int, int]:
        """(T', Hp, Wp) of a clip with `num_tokens` tokens, assuming the square crop of the config."""
        per_frame = self.patches_per_side**2
        if num_tokens % per_frame:
            raise ValueError(
                f"{num_tokens} tokens are not a whole number of {self.patches_per_side}x"
                f"{self.patches_per_side} frames; pass grid=(T', Hp, Wp) explicitly"
            )
        return (num_tokens // per_frame, self.patches_per_side, self.patches_per_side)

    def pool(self, features: torch.Tensor, grid: tuple[int, int, int] | None = None) -> torch.Tensor:
        """(B, N, D_vision) -> (B, K, D_vision), pooled on the (T', Hp, Wp) grid; see `pool_video_tokens`."""
        grid = tuple(grid) if grid is not None else self.grid_for(features.shape[1])
        return pool_video_tokens(features, grid, self.pooled_grid)

    def forward(self, features: torch.Tensor, grid: tuple[int, int, int] | None = None) -> torch.Tensor:
        """Map encoder tokens to visual tokens for the LLM.

        Args:
            features: (B, N, D_vision) frozen V-JEPA 2 encoder output (`last_hidden_state`), time-major.
            grid: (T', Hp, Wp) with T' = frames / 2; derived from `patches_per_side` when None.

        Returns:
            (B, K, D_llm) visual tokens, K = `num_visual_tokens`, in time-major order, in the
            projector's dtype (cast them to the LLM's embedding dtype before concatenating).
        """
        pooled = self.pool(features.to(self.mlp[0].weight.dtype), grid)
        return self.mlp(pooled + self.position_embedding)
