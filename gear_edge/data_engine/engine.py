"""The data engine: a folder of images → verified QA–mask pairs (COCO JSON + JSONL), resumable.

For each image (sorted relative paths, so every run visits them in the same order): perceive once,
let the writers propose candidates (the template writer's exact questions, optionally the LLM's),
verify each candidate by asking the deducer on the same scene, and append ONE journal record with
the image's regions, kept pairs and rejected candidates (with reasons). The candidates of an image
come from an RNG seeded by ``(seed, file name)``, so an image gives the same pairs whichever run
processes it, in whatever order.

Crash safety: the journal (``journal.jsonl``, see :mod:`.journal`) is the only state; a record is
either complete (newline-terminated, fsynced) or cut off at the next start. The final files are
rebuilt from the journal at the end of every run and written with atomic renames; their ids are
assigned from the sorted file names, so an interrupted-and-resumed run ends with byte-identical
pairs to an uninterrupted one. A re-run skips images already in the journal (and checks their bytes
did not change); ``summary.json`` is written last and lists the sha256 of the other final files, so a
reader can tell a finished output from one whose run was killed while writing them.

Output directory::

    journal.jsonl        append-only; one "run" record per invocation, one "image"/"failed" per image
    annotations.json     COCO: images, annotations (RLE segmentation, one per region), categories
    pairs.jsonl          one kept QA pair per line (ids into annotations.json, logic chain, models)
    rejected.jsonl       one rejected candidate per line with its reason code and sentence
    summary.json         counts, rates, rejection by class and reason, timings, file hashes
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from gear_edge.data_engine.base import Candidate, normalise_question
from gear_edge.data_engine.journal import RECORD_FIELDS, Journal, read_records, write_atomic
from gear_edge.model_inventory import compact, model_inventory
from gear_edge.data_engine.taxonomy import CLASSES, check_class
from gear_edge.data_engine.verify import Verifier
from gear_edge.errors import GearEdgeError, InputError

FORMAT = 1
JOURNAL = "journal.jsonl"
ANNOTATIONS = "annotations.json"
PAIRS = "pairs.jsonl"
REJECTED = "rejected.jsonl"
SUMMARY = "summary.json"
FINAL_FILES = (ANNOTATIONS, PAIRS, REJECTED)
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
CATEGORY = {"id": 1, "name": "object", "supercategory": "region"}


@dataclass
class EngineSettings:
    """What decides the pairs of an image; a resumed run must use the same (checked against the journal).

    ``profile``/``overrides``: the GearSeg config; ``per_class``: template questions per taxonomy
    class and image; ``llm_questions``: LLM-written questions per image (0: none);
    ``min_iou``: also accept a different id set whose mask has this IoU with the expected one.
    """

    profile: str = "default"
    overrides: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    per_class: int = 3
    classes: tuple[str, ...] = CLASSES
    llm_questions: int = 0
    llm_temperature: float = 0.0
    max_targets: int = 8
    min_iou: float | None = None

    def __post_init__(self) -> None:
        self.classes = tuple(check_class(c) for c in self.classes)
        if self.per_class < 0 or self.llm_questions < 0:
            raise InputError(f"per_class and llm_questions must be >= 0, got {self.per_class}, {self.llm_questions}")
        if self.max_targets < 2:
            raise InputError(f"max_targets must be >= 2, got {self.max_targets}")
        if not self.classes:
            raise InputError("at least one taxonomy class is needed")
        self.overrides = {str(k): v for k, v in sorted(dict(self.overrides).items())}

    def key(self) -> dict[str, Any]:
        d = asdict(self)
        d["classes"] = list(self.classes)
        return json.loads(json.dumps(d))


def list_images(images_dir: str | os.PathLike, limit: int | None = None) -> list[str]:
    """Sorted POSIX paths (relative to ``images_dir``) of its image files, recursively; the first ``limit``."""
    root = Path(images_dir)
    if not root.is_dir():
        raise InputError(f"images directory {root} does not exist or is not a directory")
    if limit is not None and limit < 1:
        raise InputError(f"limit must be >= 1, got {limit}")
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                   if p.is_file() and p.suffix.lower() in IMAGE_EXTS and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not names:
        raise InputError(f"images directory {root} has no image files ({', '.join(IMAGE_EXTS)})")
    return names[:limit] if limit else names


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _cand_dict(c: Candidate) -> dict[str, Any]:
    return {"question": c.question, "class": c.cls, "targets": list(c.targets), "writer": c.writer,
            "template": c.template, "rationale": list(c.rationale)}


@dataclass
class ImageResult:
    """What processing one image gave (also the argument of the progress callback)."""

    file_name: str
    status: str  # "done" | "failed" | "skipped"
    kept: int = 0
    rejected: int = 0
    error: str | None = None
    seconds: float = 0.0


ProgressFn = Callable[[ImageResult], None]


class DataEngine:
    """Generates verified QA pairs for the images of ``images_dir`` into ``out_dir``.

    ``pipeline``: a GearSeg (or anything with ``perceive``, ``ask``, ``config`` and, when
    ``llm_questions`` > 0, ``llm``); built from ``settings.profile``/``overrides`` when None.
    """

    def __init__(self, images_dir: str | os.PathLike, out_dir: str | os.PathLike, settings: EngineSettings | None = None,
                 *, pipeline: Any = None) -> None:
        self.images_dir = Path(images_dir)
        self.out_dir = Path(out_dir)
        self.settings = settings or EngineSettings()
        self._gs = pipeline
        self._inventory: list[dict[str, Any]] | None = None

    # ---- components ------------------------------------------------------------------------------

    @property
    def pipeline(self):
        if self._gs is None:
            from gear_edge.pipeline import GearSeg

            self._gs = GearSeg.from_config(self.settings.profile, self.settings.overrides or None)
        return self._gs

    @property
    def inventory(self) -> list[dict[str, Any]]:
        if self._inventory is None:
            self._inventory = model_inventory(self.pipeline.config)
        return self._inventory

    def _writers(self) -> list[Any]:
        from gear_edge.data_engine.generate import TemplateWriter

        s = self.settings
        writers: list[Any] = [TemplateWriter(per_class=s.per_class, classes=s.classes, max_targets=s.max_targets)]
        if s.llm_questions > 0:
            from gear_edge.data_engine.llm_writer import LLMQuestionWriter

            writers.append(LLMQuestionWriter(self.pipeline.llm, n=s.llm_questions, classes=s.classes,
                                             max_targets=min(4, s.max_targets), temperature=s.llm_temperature))
        return writers

    # ---- one image ---------------------------------------------------------------------------------

    def process_image(self, file_name: str, writers: Sequence[Any], verifier: Verifier) -> dict[str, Any]:
        """The journal record of one image (``type`` "image"); InputError when the file is unreadable."""
        from gear_edge.io import read_image

        path = self.images_dir / file_name
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read image file {path}: {exc}") from None
        image = read_image(path)
        t0 = time.perf_counter()
        scene = self.pipeline.perceive(image)
        scene.captions()  # the writers read every region's caption (computes them when captions are on demand)
        t1 = time.perf_counter()
        rng = random.Random(f"{self.settings.seed}:{file_name}")
        cands: list[Candidate] = []
        for w in writers:
            cands += w.write(scene, rng)
        t2 = time.perf_counter()
        pairs, rejected, seen = [], [], set()
        for c in cands:
            rec = _cand_dict(c)
            key = normalise_question(c.question)
            if c.meta.get("invalid"):
                rejected.append({**rec, "reason": "writer_invalid", "detail": str(c.meta["invalid"]), "deducer_targets": []})
                continue
            if key in seen:
                rejected.append({**rec, "reason": "duplicate", "detail": "the same question was already asked on this image",
                                 "deducer_targets": []})
                continue
            seen.add(key)
            v = verifier.verify(scene, c)
            if v.kept:
                pairs.append({**rec, "agreement": v.reason, "chain": [{"text": s.text, "kept": s.kept} for s in v.chain]})
            else:
                rejected.append({**rec, "reason": v.reason, "detail": v.detail, "deducer_targets": list(v.deducer_targets)})
        t3 = time.perf_counter()
        h, w = scene.image_size
        return {
            "type": "image",
            "file_name": file_name,
            "sha256": _sha256(data),
            "height": int(h),
            "width": int(w),
            "regions": [{"region_id": r.id, "segmentation": {"size": list(r.rle["size"]), "counts": r.rle["counts"]},
                         "bbox": [float(v) for v in r.bbox], "area": int(r.area),
                         "score": None if r.score is None else float(r.score)} for r in scene.regions],
            "candidates": len(cands),
            "pairs": pairs,
            "rejected": rejected,
            "timings": {"perceive_ms": (t1 - t0) * 1e3, "write_ms": (t2 - t1) * 1e3, "verify_ms": (t3 - t2) * 1e3,
                        "total_ms": (t3 - t0) * 1e3},
        }

    # ---- the run -----------------------------------------------------------------------------------

    def _check_resume(self, records: list[dict[str, Any]]) -> None:
        runs = [r for r in records if r.get("type") == "run"]
        if not runs:
            return
        first = runs[0]
        if first.get("format") != FORMAT:
            raise InputError(f"{self.out_dir / JOURNAL} has format {first.get('format')!r}; this engine writes {FORMAT}")
        old, new = first.get("settings", {}), self.settings.key()
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if diff:
            changes = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff)
            raise InputError(f"{self.out_dir} was generated with other settings ({changes}); "
                             "resume with the same settings or use a new output directory")
        old_models = {(m["role"], m["name"]): m["sha256"] for m in first.get("models", [])}
        new_models = {(m["role"], m["name"]): m["sha256"] for m in self.inventory}
        if old_models != new_models:
            changed = sorted(f"{r}/{n}" for (r, n) in set(old_models) | set(new_models)
                             if old_models.get((r, n)) != new_models.get((r, n)))
            raise InputError(f"{self.out_dir} was generated with other models ({', '.join(changed)}); "
                             "use a new output directory")

    def _check_out_dir(self) -> None:
        """Refuses output folders whose files this engine did not write (they would be overwritten)."""
        out, imgs = self.out_dir.resolve(), self.images_dir.resolve()
        if out == imgs or imgs in out.parents:
            raise InputError(f"the output folder {self.out_dir} is inside the images folder {self.images_dir}; "
                             "its exports would be read back as input images - choose another output folder")
        journal = self.out_dir / JOURNAL
        if journal.exists():
            records, _ = read_records(journal, RECORD_FIELDS)
            if records and (records[0].get("type") != "run" or "settings" not in records[0]):
                raise InputError(f"{journal} was not written by the data engine (its first record is not a run record); "
                                 "choose another output folder")
        else:
            ours = [n for n in (*FINAL_FILES, SUMMARY) if (self.out_dir / n).exists()]
            if ours:
                raise InputError(f"{self.out_dir} already holds {', '.join(ours)} but no {JOURNAL}: not a data engine "
                                 "output folder (or its journal was removed); choose another output folder")

    def _clean_stale_tmp(self) -> None:
        for p in self.out_dir.glob(".*.tmp"):
            if any(p.name.startswith(f".{name}.") for name in (*FINAL_FILES, SUMMARY)):
                p.unlink(missing_ok=True)

    def run(self, limit: int | None = None, progress: ProgressFn | None = None,
            on_start: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Processes every unfinished image, then rebuilds the final files; returns the summary.

        ``on_start(pending, finished)`` is called once the work is known; ``progress(result)``
        after every image (pending ones only).
        """
        names = list_images(self.images_dir, limit)
        self._check_out_dir()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        t_start = time.perf_counter()
        run_stats: dict[str, Any] = {"images": 0, "failed": 0, "kept": 0, "rejected": 0}
        with Journal(self.out_dir / JOURNAL, RECORD_FIELDS) as journal:
            self._clean_stale_tmp()
            self._check_resume(journal.records)
            done = {r["file_name"]: r for r in journal.records if r.get("type") == "image"}
            for name in names:
                rec = done.get(name)
                if rec is not None:
                    digest = _sha256((self.images_dir / name).read_bytes())
                    if digest != rec["sha256"]:
                        raise InputError(f"{self.images_dir / name} changed since it was processed into {self.out_dir} "
                                         f"(sha256 {digest[:12]}… vs {rec['sha256'][:12]}…); restore it or use a new output directory")
            pending = [n for n in names if n not in done]
            if on_start is not None:
                on_start(len(pending), len(names) - len(pending))
            journal.append({"type": "run", "format": FORMAT, "settings": self.settings.key(), "models": self.inventory,
                            "images_dir": str(self.images_dir.resolve()), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "pending": len(pending), "torn_bytes_dropped": journal.torn_bytes})
            if pending:
                writers = self._writers()
                verifier = Verifier(self.pipeline, min_iou=self.settings.min_iou)
            for name in pending:
                t0 = time.perf_counter()
                try:
                    rec = self.process_image(name, writers, verifier)
                except GearEdgeError as exc:  # one bad image never stops the run nor loses the others
                    if not isinstance(exc, InputError):
                        raise
                    journal.append({"type": "failed", "file_name": name, "error": str(exc)})
                    run_stats["failed"] += 1
                    result = ImageResult(name, "failed", error=str(exc), seconds=time.perf_counter() - t0)
                else:
                    journal.append(rec)
                    run_stats["images"] += 1
                    run_stats["kept"] += len(rec["pairs"])
                    run_stats["rejected"] += len(rec["rejected"])
                    result = ImageResult(name, "done", len(rec["pairs"]), len(rec["rejected"]), seconds=time.perf_counter() - t0)
                if progress is not None:
                    progress(result)
            seconds = time.perf_counter() - t_start
            run_stats["seconds"] = seconds
            run_stats["images_per_min"] = run_stats["images"] / seconds * 60.0 if seconds > 0 and run_stats["images"] else 0.0
            run_stats["skipped_finished"] = len(names) - len(pending)
            run_stats["threads"] = int(getattr(self.pipeline, "threads", 0) or 0)
            return finalize(self.out_dir, journal.records, names, run_stats)


# ---- final files -------------------------------------------------------------------------------------

def _latest_images(records: Iterable[dict[str, Any]], names: Sequence[str] | None) -> tuple[dict[str, dict], dict[str, str]]:
    """First complete record per file (later duplicates are ignored) and failures never followed by success."""
    images: dict[str, dict] = {}
    failed: dict[str, str] = {}
    for r in records:
        t = r.get("type")
        if t == "image" and r["file_name"] not in images:
            images[r["file_name"]] = r
            failed.pop(r["file_name"], None)
        elif t == "failed" and r["file_name"] not in images:
            failed[r["file_name"]] = r.get("error", "")
    if names is not None:
        wanted = set(names)
        failed = {k: v for k, v in failed.items() if k in wanted}
    return images, failed


def build_outputs(records: list[dict[str, Any]], names: Sequence[str] | None = None) -> dict[str, Any]:
    """COCO dict, pair records and rejected records from journal records (deterministic ids)."""
    runs = [r for r in records if r.get("type") == "run"]
    models = compact(runs[0]["models"]) if runs else []
    images, failed = _latest_images(records, names)
    coco = {
        "info": {"description": "gear_edge data engine output", "format": FORMAT,
                 "images_dir": runs[-1].get("images_dir") if runs else None,
                 "settings": runs[0]["settings"] if runs else None, "models": runs[0]["models"] if runs else []},
        "licenses": [],
        "images": [],
        "annotations": [],
        "categories": [dict(CATEGORY)],
    }
    pairs: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    ann_id = 0
    for image_id, name in enumerate(sorted(images), start=1):
        rec = images[name]
        coco["images"].append({"id": image_id, "file_name": name, "height": rec["height"], "width": rec["width"],
                               "sha256": rec["sha256"]})
        ann_of: dict[int, int] = {}
        for reg in rec["regions"]:
            ann_id += 1
            ann_of[int(reg["region_id"])] = ann_id
            coco["annotations"].append({"id": ann_id, "image_id": image_id, "category_id": CATEGORY["id"],
                                        "segmentation": reg["segmentation"], "area": reg["area"], "bbox": reg["bbox"],
                                        "iscrowd": 0, "region_id": reg["region_id"], "score": reg.get("score")})
        for p in rec["pairs"]:
            pairs.append({"id": len(pairs) + 1, "image_id": image_id, "file_name": name, "question": p["question"],
                          "class": p["class"], "target_ann_ids": [ann_of[t] for t in p["targets"]],
                          "target_region_ids": p["targets"], "logic_chain": p["chain"], "rationale": p["rationale"],
                          "writer": p["writer"], "template": p["template"], "agreement": p["agreement"], "models": models})
        for p in rec["rejected"]:
            rejected.append({"image_id": image_id, "file_name": name, **p})
    return {"coco": coco, "pairs": pairs, "rejected": rejected, "images": images, "failed": failed}


def _jsonl(items: Iterable[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(x, separators=(",", ":"), ensure_ascii=False) + "\n" for x in items).encode("utf-8")


def summarise(built: dict[str, Any], run_stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """Dataset totals, per-class candidates / kept / rejection rate / reasons, timings."""
    images = built["images"]
    by_class: dict[str, dict[str, Any]] = {c: {"candidates": 0, "kept": 0, "rejected": 0, "reasons": Counter()} for c in CLASSES}
    by_writer: dict[str, Counter] = defaultdict(Counter)
    reasons: Counter = Counter()
    timings: dict[str, list[float]] = defaultdict(list)
    for rec in images.values():
        for p in rec["pairs"]:
            by_class[p["class"]]["kept"] += 1
            by_writer[p["writer"]]["kept"] += 1
        for p in rec["rejected"]:
            by_class[p["class"]]["rejected"] += 1
            by_class[p["class"]]["reasons"][p["reason"]] += 1
            by_writer[p["writer"]]["rejected"] += 1
            reasons[p["reason"]] += 1
        for k, v in rec.get("timings", {}).items():
            timings[k].append(float(v))
    for c, d in by_class.items():
        d["candidates"] = d["kept"] + d["rejected"]
        d["rejection_rate"] = d["rejected"] / d["candidates"] if d["candidates"] else None
        d["reasons"] = dict(sorted(d["reasons"].items()))
    n = len(images)
    kept, rej = len(built["pairs"]), len(built["rejected"])
    return {
        "images": n,
        "regions": len(built["coco"]["annotations"]),
        "pairs_kept": kept,
        "pairs_rejected": rej,
        "pairs_per_image": kept / n if n else 0.0,
        "rejection_rate": rej / (kept + rej) if kept + rej else None,
        "failed": [{"file_name": k, "error": v} for k, v in sorted(built["failed"].items())],
        "by_class": by_class,
        "by_writer": {k: {"kept": v["kept"], "rejected": v["rejected"]} for k, v in sorted(by_writer.items())},
        "reasons": dict(sorted(reasons.items())),
        "mean_ms": {k: sum(v) / len(v) for k, v in sorted(timings.items())},
        "this_run": run_stats or {},
    }


def finalize(out_dir: Path, records: list[dict[str, Any]], names: Sequence[str] | None,
             run_stats: dict[str, Any] | None = None) -> dict[str, Any]:
    """Writes annotations.json, pairs.jsonl, rejected.jsonl, then summary.json (with their sha256s)."""
    try:
        built = build_outputs(records, names)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputError(f"{out_dir / JOURNAL} holds a malformed record ({exc!r}); it was not written by this engine "
                         "version - use a new output directory") from None
    blobs = {
        ANNOTATIONS: json.dumps(built["coco"], separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        PAIRS: _jsonl(built["pairs"]),
        REJECTED: _jsonl(built["rejected"]),
    }
    for name, blob in blobs.items():
        write_atomic(out_dir / name, blob)
    summary = summarise(built, run_stats)
    summary["files"] = {name: _sha256(blob) for name, blob in blobs.items()}
    write_atomic(out_dir / SUMMARY, json.dumps(summary, indent=1, ensure_ascii=False).encode("utf-8"))
    return summary


def check_complete(out_dir: str | os.PathLike) -> dict[str, Any]:
    """The summary of a finished output; InputError naming the file when a run did not finish writing it."""
    out = Path(out_dir)
    try:
        summary = json.loads((out / SUMMARY).read_text())
    except FileNotFoundError:
        raise InputError(f"{out} has no {SUMMARY}: not a data engine output, or its run has not finished "
                         f"(run gear-edge data-engine again with the same arguments to finish it)") from None
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{out / SUMMARY} is unreadable: {exc}") from None
    files = summary.get("files") if isinstance(summary, dict) else None
    if not isinstance(files, dict):
        raise InputError(f"{out / SUMMARY} has no 'files' table")
    for name, digest in files.items():
        p = out / name
        if not p.is_file():
            raise InputError(f"{p} is missing (listed in {SUMMARY}); re-run the data engine to rebuild it")
        from gear_edge.manifest import sha256_file

        if sha256_file(p) != digest:
            raise InputError(f"{p} does not match {SUMMARY} (a run was interrupted while writing it); "
                             "re-run the data engine with the same arguments to rebuild it")
    return summary
