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
                "question": gr.Textbox(), "image": gr.Image(), "levels": gr.Radio([1, 2, 4], value=2),
                "scale": gr.Dropdown([("half", 0.5), ("whole", 1.0)], value=1.0)}


@pytest.mark.parametrize("key, text, value", [("ratio", "0.9", 0.9), ("top", "3", 3), ("seed", "7", 7),
                                              ("model", "vit-mae-large", "vit-mae-large"), ("noise", "grain", "grain"),
                                              ("question", "What moved?", "What moved?"), ("levels", "4", 4),
                                              ("scale", "0.5", 0.5), ("scale", "1", 1.0), ("scale", "1.0", 1.0)])
def test_a_value_is_read_as_its_control_takes_it(controls, key, text, value):
    read = links.read_value(controls[key], text)
    assert read == value and type(read) is type(value)


@pytest.mark.parametrize("key, text, says", [
    ("ratio", "abc", "a number from 0 to 0.95"), ("ratio", "nan", "a number"), ("ratio", "inf", "a number"),
    ("ratio", "0.99", "from 0 to 0.95"), ("top", "2.5", "a whole number from 0 to 15"), ("top", "-1", "whole number"),
    ("seed", "11", "from 0 to 10"), ("model", "vit-mae-giant", "vit-mae-base, vit-mae-large"),
    ("noise", "Film grain", "none, grain"), ("question", "  ", "1 to 500 characters"),
    ("question", "x" * 501, "1 to 500 characters"), ("levels", "3", "one of 1, 2, 4"), ("levels", "4.5", "1, 2, 4"),
    ("scale", "half", "one of 0.5, 1")])
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


def test_a_number_valued_choice_travels_in_a_link_as_its_number(controls):
    """An address holds text: a radio's number choice is written as its digits and read back as the number."""
    link = links.Link("noise", controls["image"], examples.images(), {"levels": controls["levels"],
                                                                      "scale": controls["scale"]})
    path, _ = link.query(None, {"levels": 4, "scale": 1.0})
    assert path == "/noise?levels=4&scale=1"
    values, problems = link.read({"levels": "4", "scale": "1"})
    assert values == {controls["levels"]: 4, controls["scale"]: 1.0} and not problems
    assert type(values[controls["levels"]]) is int


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
