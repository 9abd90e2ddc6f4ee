"""End to end: the app runs in-process and its named endpoints answer through gradio_client."""

import numpy as np
import pytest
from concept_calls import CONCEPTS, call_example, check_result
from conftest import EXAMPLE_IMAGES
from gradio_client import handle_file
from PIL import Image


def test_mae_reconstruct_endpoint(client):
    view, masked, raw, pasted, error_map, summary, numbers = client.predict(
        handle_file(str(EXAMPLE_IMAGES[0])), 0.75, 3, "vit-mae-base", api_name="/mae_reconstruct")
    assert numbers["num_hidden"] == 196 - int(196 * 0.25) == 147
    assert numbers["grid"] == [14, 14] and numbers["patch_size"] == 16
    assert "147 of 196 patches hidden" in summary
    # Beside MAE's error, what a constant output would score: the best colour can only do better than the mean one.
    assert 0 <= numbers["best_constant_mse"] <= numbers["image_mean_colour_mse"]
    assert f"**{numbers['best_constant_mse']:.4f}**" in summary
    images = [np.asarray(Image.open(path)) for path in (view, masked, raw, pasted, error_map)]
    assert all(img.shape == (224, 224, 3) for img in images)
    assert all(str(path).endswith(".png") for path in (view, masked, raw, pasted, error_map))
    # PNG end to end: visible patches of the pasted output are the model view's pixels, exactly.
    hidden = np.zeros(196, bool)
    hidden[numbers["hidden_patch_ids"]] = True
    pixel_hidden = np.repeat(np.repeat(hidden.reshape(14, 14), 16, 0), 16, 1)
    assert np.array_equal(images[3][~pixel_hidden], images[0][~pixel_hidden])


def test_same_call_same_answer(client):
    args = (handle_file(str(EXAMPLE_IMAGES[1])), 0.5, 11, "vit-mae-huge")
    first = client.predict(*args, api_name="/mae_reconstruct")[-1]
    second = client.predict(*args, api_name="/mae_reconstruct")[-1]
    assert first["hidden_patch_ids"] == second["hidden_patch_ids"]
    assert first["grid"] == [16, 16] and first["patch_size"] == 14


@pytest.mark.parametrize("ratio, seed", [(1.5, 0), (-0.2, 0), (0.5, -4), (0.5, 2**40)])
def test_absurd_values_are_clear_errors(client, ratio, seed):
    """Out-of-range values sent through the API are refused with a message naming the parameter and its range."""
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="^(mask_ratio must be a number from 0 to 0.95|mask_seed must be a whole number from 0 to)"):
        client.predict(handle_file(str(EXAMPLE_IMAGES[0])), ratio, seed, "vit-mae-base", api_name="/mae_reconstruct")


def test_a_file_that_is_not_an_image_is_a_clear_error(client, tmp_path):
    from gradio_client.exceptions import AppError

    fake = tmp_path / "holiday.png"
    fake.write_text("this is not a picture")
    with pytest.raises(AppError, match="(?i)image"):
        client.predict(handle_file(str(fake)), 0.75, 0, "vit-mae-base", api_name="/mae_reconstruct")
    # ... and the server keeps serving.
    assert client.predict(handle_file(str(EXAMPLE_IMAGES[0])), 0.1, 0, "vit-mae-base",
                          api_name="/mae_reconstruct")[-1]["num_hidden"] == 196 - int(196 * 0.9)


def test_no_image_is_a_clear_error(client):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="(?i)no image"):
        client.predict(None, 0.75, 0, "vit-mae-base", api_name="/mae_reconstruct")


@pytest.mark.parametrize("tab_id", list(CONCEPTS))
def test_every_concept_answers_its_example(client, tab_id):
    check_result(call_example(client, CONCEPTS[tab_id]))


def test_concept_pages_add_no_endpoints(client, running_app):
    """The concept pages repeat the tabs; their events stay private, so the API keeps the tabs' names. The
    prepares are served but undocumented (no MCP tools either: they only warm the page's cache)."""
    import httpx

    import app

    named = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert sorted(named) == sorted(name for concept in app.CONCEPTS for name in concept.endpoints)
    served = httpx.get(f"{running_app.local_url}gradio_api/info", params={"all_endpoints": "true"}).json()
    for prepare in (concept.prepare for concept in app.CONCEPTS if concept.prepare):
        assert served["named_endpoints"][prepare]["api_visibility"] == "undocumented"
    assert [page for page, *_ in running_app.pages] == ["", *(concept.path for concept in app.CONCEPTS)]
