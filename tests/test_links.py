"""A concept page opened at a setting: what a link may set, how its values are read, and the link given back."""

import re
import shutil

import gradio as gr
import pytest
from conftest import ROOT

import app
from demos import examples
from demos.errors import UserError
from demos.tabs import links


@pytest.fixture(scope="module")
def controls():
    with gr.Blocks():
        return {"ratio": gr.Slider(0, 0.95, value=0.75, step=0.05), "top": gr.Slider(0, 15, value=6, step=1),
                "seed": gr.Number(value=0, precision=0, minimum=0, maximum=10),
                "model": gr.Dropdown(choices=[("ViT-MAE base", "vit-mae-base"), ("ViT-MAE large", "vit-mae-large")]),
                "noise": gr.Radio([("No noise", "none"), ("Film grain", "grain")]),
                "question": gr.Textbox(), "image": gr.Image()}


@pytest.mark.parametrize("key, text, value", [("ratio", "0.9", 0.9), ("top", "3", 3), ("seed", "7", 7),
                                              ("model", "vit-mae-large", "vit-mae-large"), ("noise", "grain", "grain"),
                                              ("question", "What moved?", "What moved?")])
def test_a_value_is_read_as_its_control_takes_it(controls, key, text, value):
    read = links.read_value(controls[key], text)
    assert read == value and type(read) is type(value)


@pytest.mark.parametrize("key, text, says", [
    ("ratio", "abc", "a number from 0 to 0.95"), ("ratio", "nan", "a number"), ("ratio", "inf", "a number"),
    ("ratio", "0.99", "from 0 to 0.95"), ("top", "2.5", "a whole number from 0 to 15"), ("top", "-1", "whole number"),
    ("seed", "11", "from 0 to 10"), ("model", "vit-mae-giant", "vit-mae-base, vit-mae-large"),
    ("noise", "Film grain", "none, grain"), ("question", "  ", "1 to 500 characters"),
    ("question", "x" * 501, "1 to 500 characters")])
def test_a_bad_value_says_what_its_control_takes(controls, key, text, says):
    with pytest.raises(UserError, match=re.escape(says)):
        links.read_value(controls[key], text)


def test_a_query_sets_what_it_can_and_names_the_rest(controls):
    link = links.Link("masked-autoencoder", controls["image"], examples.images(),
                      {"ratio": controls["ratio"], "seed": controls["seed"]})
    values, problems = link.read({"example": "coffee", "ratio": "2", "seed": "4", "other": "x"})
    assert values == {controls["image"]: str(examples.IMAGES_DIR / "coffee.jpg"), controls["seed"]: 4}
    assert len(problems) == 1 and problems[0].startswith("`ratio=2`")
    _, problems = link.read({"example": "dog`s"})
    assert problems == ["`example=dog's` is not one of the bundled examples (astronaut, chelsea, coffee, rocket)"]
    text = links.notice(problems)
    assert "opened with the default" in text and "dog's" in text
    assert links.notice([]) == ""


def test_the_link_names_a_bundled_example_by_its_content(controls, tmp_path):
    link = links.Link("masked-autoencoder", controls["image"], examples.images(),
                      {"ratio": controls["ratio"], "seed": controls["seed"]})
    uploaded = shutil.copy(examples.IMAGES_DIR / "rocket.jpg", tmp_path / "upload.jpg")  # a copy under another name
    assert link.query(uploaded, {"ratio": 0.9, "seed": 3.0}) == ("/masked-autoencoder?example=rocket&ratio=0.9&seed=3", "")
    own = tmp_path / "own.jpg"
    own.write_bytes(b"not one of ours")
    path, note = link.query(str(own), {"ratio": 0.75, "seed": 0})
    assert path == "/masked-autoencoder?ratio=0.75&seed=0" and "cannot travel in a link" in note


def test_the_readme_lists_each_pages_keys(tiny_hub):
    """The README's table of link keys, against the keys each concept page reads."""
    readme = (ROOT / "README.md").read_text()
    for concept in app.CONCEPTS:
        with gr.Blocks():
            link = concept.build(endpoints=False).link
        row = re.search(rf"^\| `/{concept.path}` \| (.*) \|$", readme, re.M)
        assert row, f"README has no row of link keys for /{concept.path}"
        listed = [key for key in re.findall(r"`([a-z_]+)`", row.group(1)) if key in link.settings or key == "example"]
        assert sorted(set(listed)) == sorted(link.settings), (concept.path, listed)
