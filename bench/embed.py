"""How fast the numpy all-MiniLM-L6-v2 loads and embeds, and next to sentence-transformers.

Run: ``.venv/bin/python bench/embed.py`` (``--help`` for the counts).

With ``--reference`` it also times sentence-transformers on torch in the same process, on the
same texts, one after the other, so the ratio holds on a shared, noisy machine where absolute
rates do not. torch is never a project dependency: run that from a scratch virtualenv that has
torch, sentence-transformers, tokenizers and safetensors (see tests/golden/make_minilm_reference.py),
e.g. ``HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python bench/embed.py --reference``.

Both are timed through their blocking calls (``embed_sync`` and ``encode``), so the numbers are
the model's cost, not the event loop's.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# Run as a script, Python puts bench/ first on sys.path; the checkout's own app package must
# win over any installed copy, or this would time some other tree's code.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from app.stores.embeddings.minilm import load_minilm

TOPICS = [
    "sustainable fashion line",
    "cloud security webinar",
    "back-to-school sale on laptops",
    "summer music festival tickets",
    "plant-based protein snacks",
    "small business tax tips",
    "electric bike commuting guide",
    "holiday gift cards for coffee lovers",
]
FORMS = [
    "Launch campaign for {}",
    "Weekly newsletter about {}",
    "Instagram carousel on {}",
    "Retargeting ads: {}",
]
# 32 short texts (5 to 12 word pieces), like campaign titles and briefs' first lines.
TEXTS = [form.format(topic) for topic in TOPICS for form in FORMS]


def best_rate(embed: Callable[[Sequence[str]], Any], batch: int, repeats: int) -> float:
    """Texts per second over TEXTS in calls of ``batch`` texts, from the fastest of ``repeats``
    passes: other work on a shared machine only ever slows a pass down, so the fastest is the
    closest to the code's own cost."""
    calls = [TEXTS[i : i + batch] for i in range(0, len(TEXTS), batch)]
    fastest = math.inf
    for _ in range(repeats):
        started = time.perf_counter()
        for call in calls:
            embed(call)
        fastest = min(fastest, time.perf_counter() - started)
    return len(TEXTS) / fastest


def directory_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--trials", type=int, default=7, help="interleaved trials; the fastest of each counts"
    )
    parser.add_argument(
        "--reference", action="store_true", help="also time sentence-transformers (needs torch)"
    )
    args = parser.parse_args()

    started = time.perf_counter()
    ours = load_minilm()
    load_total = time.perf_counter() - started
    weights = ours.model_dir / "model.safetensors"
    print(f"model: {ours.name} at {ours.model_dir}")
    print(
        f"on disk: model.safetensors {weights.stat().st_size / 1e6:.1f} MB,"
        f" model directory {directory_mb(ours.model_dir):.1f} MB"
    )
    print(
        f"texts: {len(TEXTS)}, word pieces {min(map(len, ours.tokenize(TEXTS)))}-"
        f"{max(map(len, ours.tokenize(TEXTS)))}"
    )
    implementations: list[tuple[str, float, Callable[[Sequence[str]], Any]]] = [
        ("numpy (MiniLMEmbedder)", load_total, ours.embed_sync)
    ]
    vectors = ours.embed_sync(TEXTS)

    if args.reference:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        torch = importlib.import_module("torch")
        sentence_transformers = importlib.import_module("sentence_transformers")
        started = time.perf_counter()
        reference = sentence_transformers.SentenceTransformer(str(ours.model_dir), device="cpu")
        ref_load = time.perf_counter() - started

        def encode(texts: Sequence[str]) -> Any:
            return reference.encode(list(texts), batch_size=32, convert_to_numpy=True)

        label = f"sentence-transformers (torch {torch.__version__})"
        implementations.append((label, ref_load, encode))
        diff = float(np.abs(vectors - encode(TEXTS)).max())
        print(f"largest difference between the two sets of vectors: {diff:.2e}")

    # Interleaved, so a burst of load elsewhere on the machine hits both alike.
    best: dict[str, list[float]] = {label: [0.0, 0.0] for label, _, _ in implementations}
    for _ in range(args.trials):
        for label, _, embed in implementations:
            best[label][0] = max(best[label][0], best_rate(embed, 1, 1))
            best[label][1] = max(best[label][1], best_rate(embed, 32, 3))
    rows = [(label, load, best[label][0], best[label][1]) for label, load, _ in implementations]

    print()
    print("| implementation | load | batch of 1 | batch of 32 |")
    print("| --- | --- | --- | --- |")
    for label, load, one, many in rows:
        print(f"| {label} | {load:.2f} s | {one:,.0f} texts/s | {many:,.0f} texts/s |")
    if len(rows) == 2:
        (_, load_a, one_a, many_a), (_, load_b, one_b, many_b) = rows
        print(
            f"| numpy / torch | {load_a / load_b:.2f}x the time |"
            f" {one_a / one_b:.2f}x the rate | {many_a / many_b:.2f}x the rate |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
