"""The README's table of concepts, written from app.py's CONCEPTS, so that a new concept appears there by itself.

    python -m tools.concepts_table           # rewrite the table in README.md
    python -m tools.concepts_table --check   # exit 1 when README.md's table is not the one CONCEPTS gives
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"(<!-- concepts:[^\n]*-->\n)(.*?)(<!-- /concepts -->)", re.S)


def table() -> str:
    """One row per concept, in tab order: its title, its own page, the line it leads with and its endpoints."""
    from app import CONCEPTS

    rows = ["| concept | page | opens with | endpoints |", "| --- | --- | --- | --- |"]
    rows += [f"| {c.title} | `/{c.path}` | {c.call_to_action} | {', '.join(f'`{e}`' for e in c.endpoints)} |"
             for c in CONCEPTS]
    return "\n".join(rows) + "\n"


def rewritten(text: str) -> str:
    if not BLOCK.search(text):
        raise SystemExit(f"{README.name} has no '<!-- concepts: ... -->' ... '<!-- /concepts -->' block")
    return BLOCK.sub(lambda match: match.group(1) + table() + match.group(3), text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when the table is out of date")
    args = parser.parse_args(argv)
    text = README.read_text()
    new = rewritten(text)
    if args.check:
        if new != text:
            print(f"{README.name}'s table of concepts is out of date: run python -m tools.concepts_table")
            return 1
        return 0
    README.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
