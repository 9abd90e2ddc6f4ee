"""The README and docs/ describe the product as it is: the table of concepts follows app.py's CONCEPTS, each concept
has its section in docs/concepts.md, no count of concepts and no endpoint disagrees with CONCEPTS, the header names the
first tab's concept, every link between them resolves, and no file speaks of issue numbers."""

import re
import subprocess

from conftest import ROOT

import app
from app import CONCEPTS
from tools import concepts_table

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10,
           "eleven": 11, "twelve": 12}


def test_the_readme_lists_the_concepts_app_py_serves():
    assert concepts_table.rewritten(concepts_table.README.read_text()) == concepts_table.README.read_text(), (
        "README.md's table of concepts is out of date: run python -m tools.concepts_table")


def test_each_concept_has_its_section_in_docs_concepts():
    sections = re.findall(r"(?m)^## (.+)$", (ROOT / "docs" / "concepts.md").read_text())
    for concept in CONCEPTS:
        assert any(section.startswith(concept.title) for section in sections), (concept.title, sections)


def test_no_count_of_concepts_disagrees_with_concepts():
    """Prose that counts the concepts ("the four concepts", "a four-tab page") goes stale with a new one."""
    counted = re.compile(rf"\b((?i:{'|'.join(NUMBERS)})|\d+)[ -](concepts?|tabs?|ideas?)\b")  # not the Tab key
    for page in [*DOCS, ROOT / "app.py"]:
        for number, noun in counted.findall(page.read_text()):
            count = NUMBERS.get(number.lower()) or int(number)
            assert count in (1, len(CONCEPTS)), (page.name, f"{number} {noun}", f"{len(CONCEPTS)} concepts")


def test_every_endpoint_the_docs_name_is_served():
    named = {name for page in DOCS for name in re.findall(r"`(/[a-z0-9]+(?:_[a-z0-9]+)+)`", page.read_text())}
    served = {endpoint for concept in CONCEPTS for endpoint in (*concept.endpoints, concept.prepare) if endpoint}
    assert named <= served, sorted(named - served)


def test_the_header_sends_the_learner_to_the_first_tab():
    from demos.tabs import mae

    assert app._first_idea(mae.CONCEPT) == "the masked autoencoder"
    assert f"Start with {app._first_idea(CONCEPTS[0])}." in app.HEADER


def test_links_between_the_readme_and_docs_resolve():
    for page in DOCS:
        for target in re.findall(r"\]\(((?!https?:|#)[^)#\s]+)", page.read_text()):
            assert (page.parent / target).exists(), (page.name, target)


def test_no_file_speaks_of_issue_numbers():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    pattern = re.compile(r"\b[Ii]ssues? #?\d+|\(#\d+\)")
    found = [f"{name}:{number}" for name in tracked if name.endswith((".py", ".md", ".html", ".txt", ".ini", ".toml"))
             for number, line in enumerate((ROOT / name).read_text(errors="replace").splitlines(), 1)
             if pattern.search(line) and "gradio-app/gradio" not in line]
    assert not found, found
