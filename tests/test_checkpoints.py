"""The registry's published geometry is the models' own: the configs the replicas are built from (the published
ones, `offline.replicas.FULL_CONFIGS`) and the tiny replicas the tests load."""

import pytest
import transformers

import checkpoints
from offline import replicas

WITH_GEOMETRY = [name for name, ckpt in checkpoints.REGISTRY.items() if ckpt.patch_size]


def _published_config(ckpt: checkpoints.Checkpoint):
    """The full-size replica's config, without building its weights."""
    config_class = transformers.ViTMAEConfig if ckpt.model_class.startswith("ViTMAE") else transformers.VJEPA2Config
    return config_class(**replicas.FULL_CONFIGS[ckpt.name])


def test_every_vision_checkpoint_has_its_geometry():
    assert WITH_GEOMETRY == [*checkpoints.MAE_CHECKPOINTS, "vjepa2-vitl", "vjepa2-ssv2-probe", "vjepa2-diving48-probe"]
    assert [checkpoints.get(name).patches_per_side for name in WITH_GEOMETRY] == [14, 14, 16, 16, 16, 16]


@pytest.mark.parametrize("name", WITH_GEOMETRY)
def test_the_registry_geometry_is_the_published_configs(name):
    ckpt = checkpoints.get(name)
    config = _published_config(ckpt)
    video = hasattr(config, "tubelet_size")
    image_size = config.crop_size if video else config.image_size
    assert (config.patch_size, image_size) == (ckpt.patch_size, ckpt.image_size)
    assert (config.tubelet_size if video else None) == ckpt.tubelet_size


@pytest.mark.parametrize("name", WITH_GEOMETRY)
def test_the_loaded_replicas_have_the_registry_patches(tiny_hub, name):
    ckpt = checkpoints.get(name)
    config = checkpoints.load(name).model.config
    assert config.patch_size == ckpt.patch_size
    assert getattr(config, "tubelet_size", None) == ckpt.tubelet_size
