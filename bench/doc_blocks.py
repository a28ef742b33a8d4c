"""Benchmarks write their latest table into docs/benchmarks.md between markers of their
own, so a rerun replaces its numbers and leaves the prose around them alone."""

from __future__ import annotations

import re
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def replace_block(name: str, heading: str, text: str, path: Path = BENCHMARKS) -> None:
    """Put ``text`` between ``<!-- name:begin -->`` and ``<!-- name:end -->``; the first
    time, at the end under ``## heading``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{text}\n{end}"
    doc = path.read_text()
    if begin in doc:
        doc = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, doc, flags=re.S)
    else:
        doc += f"\n## {heading}\n\n{block}\n"
    path.write_text(doc)
