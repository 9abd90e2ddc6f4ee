"""The README and docs/ describe the product as it is: the table of concepts follows app.py's CONCEPTS, each concept
has its section in docs/concepts.md, every link between them resolves, and no file speaks of issue numbers."""

import re
import subprocess

from conftest import ROOT

from app import CONCEPTS
from tools import concepts_table


def test_the_readme_lists_the_concepts_app_py_serves():
    assert concepts_table.rewritten(concepts_table.README.read_text()) == concepts_table.README.read_text(), (
        "README.md's table of concepts is out of date: run python -m tools.concepts_table")


def test_each_concept_has_its_section_in_docs_concepts():
    sections = re.findall(r"(?m)^## (.+)$", (ROOT / "docs" / "concepts.md").read_text())
    for concept in CONCEPTS:
        assert any(section.startswith(concept.title) for section in sections), (concept.title, sections)


def test_links_between_the_readme_and_docs_resolve():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(((?!https?:|#)[^)#\s]+)", page.read_text()):
            assert (page.parent / target).exists(), (page.name, target)


def test_no_file_speaks_of_issue_numbers():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    pattern = re.compile(r"\b[Ii]ssues? #?\d+|\(#\d+\)")
    found = [f"{name}:{number}" for name in tracked if name.endswith((".py", ".md", ".html", ".txt", ".ini", ".toml"))
             for number, line in enumerate((ROOT / name).read_text(errors="replace").splitlines(), 1)
             if pattern.search(line) and "gradio-app/gradio" not in line]
    assert not found, found
