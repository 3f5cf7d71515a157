"""GearSeg: segment → describe → deduce, wired from a Config.

    gs = GearSeg.from_config("default")
    scene = gs.perceive(image)                 # once per frame
    answer = gs.ask(scene, "the red box")      # many queries per scene (the LLM reuses the scene prefix)
    answer = gs.segment(image, "the red box")  # both at once

Components are built lazily on first use, so a caller who brings masks never loads a segmenter and
``perceive`` never loads the LLM.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gear_edge.config import Config, load_config
from gear_edge.crops import check_image
from gear_edge.describe.scene import describe_scene
from gear_edge.errors import InputError
from gear_edge.types import RLE, Answer, Region, Scene, targets_3d


class GearSeg:
    """The reasoning-segmentation pipeline. Thread-compatible, not thread-safe (one caller at a time)."""

    def __init__(self, config: Config, *, segmenter=None, ocr=None, captioner=None, deducer=None) -> None:
        self.config = config
        self._segmenter = segmenter
        self._ocr = ocr
        self._captioner = captioner
        self._deducer = deducer
        self._llm = None

    @classmethod
    def from_config(cls, path_or_profile: str | Path = "default", overrides: Mapping[str, Any] | None = None, **components) -> "GearSeg":
        return cls(load_config(path_or_profile, overrides), **components)

    # ---- components -------------------------------------------------------------------------

    @property
    def threads(self) -> int:
        return int(self.config.get("runtime", "threads", 2))

    @property
    def segmenter(self):
        if self._segmenter is None:
            kind = self.config.get("segment", "kind")
            if kind == "classical":
                from gear_edge.segment.classical import ClassicalSegmenter

                self._segmenter = ClassicalSegmenter(**self.config.section("segment.classical"))
            elif kind == "sam2":
                from gear_edge.segment.factory import sam2_segmenter_from_config

                self._segmenter = sam2_segmenter_from_config(self.config)
            else:  # pragma: no cover - the config loader rejects other kinds
                raise InputError(f"unknown segmenter kind {kind!r}")
        return self._segmenter

    @property
    def ocr(self):
        if self._ocr is None and self.config.get("describe", "ocr", False):
            from gear_edge.describe.ocr import OcrReader

            self._ocr = OcrReader(threads=self.threads)
        return self._ocr

    @property
    def captioner(self):
        if self._captioner is None:
            path = self.config.path("describe", "captioner")
            if path is not None:
                from gear_edge.describe.captioner import Captioner

                self._captioner = Captioner.from_dir(path, threads=self.threads)
        return self._captioner

    @property
    def llm(self):
        """The local LLM (llama.cpp), shared by the deducer and the data engine's question writer."""
        if self._llm is None:
            from gear_edge.deduce.llm import LocalLLM

            model, verified = self._user_llm()
            self._llm = LocalLLM(
                model_path=model,
                sha256=verified.get("sha256"),
                manifest=verified.get("manifest"),
                n_ctx=int(self.config.get("deduce", "n_ctx", 2048)),
                threads=self.threads,
                seed=int(self.config.get("deduce", "seed", 0)),
                max_cached_scenes=int(self.config.get("deduce", "max_cached_scenes", 4)),
            )
        return self._llm

    @property
    def deducer(self):
        if self._deducer is None:
            mode = self.config.get("deduce", "mode", "program")
            if mode == "direct":
                from gear_edge.deduce.direct import DirectDeducer

                self._deducer = DirectDeducer(self.llm)
            else:
                from gear_edge.deduce.program.deducer import ProgramDeducer

                # the LLM loads only when a query needs it (most are parsed without it), but a
                # configured GGUF that is not there is a configuration error now, not mid-mission
                self._user_llm()
                self._deducer = ProgramDeducer(llm=lambda: self.llm, threads=self.threads)
        return self._deducer

    def _user_llm(self) -> tuple[Path | None, dict[str, Any]]:
        """``deduce.model`` checked before use (``deduce.model_sha256``, the manifest next to it, or
        ``runtime.allow_unverified_models``) and the LocalLLM arguments that verify it again at load."""
        model = self.config.path("deduce", "model")
        if model is None:
            return None, {}
        if not model.is_file():
            raise InputError(f"deduce.model: GGUF file {model} does not exist; fix the path or leave "
                             "deduce.model empty for the default SmolLM2-135M")
        from gear_edge.manifest import check_model_file

        sha = self.config.get("deduce", "model_sha256") or ""
        how = check_model_file(model, "deduce.model", sha256=sha,
                               allow_unverified=bool(self.config.get("runtime", "allow_unverified_models")))
        if how == "sha256":
            return model, {"sha256": sha}
        if how == "manifest":
            return model, {"manifest": model.with_suffix(".toml")}
        return model, {}

    # ---- stages -------------------------------------------------------------------------------

    def perceive(self, image: np.ndarray, masks: Sequence[RLE] | Sequence[Region] | np.ndarray | None = None) -> Scene:
        """Regions (own segmenter, or the caller's masks), exact attributes, relations, OCR text, captions."""
        image = check_image(image)
        from gear_edge.io import check_pixels

        check_pixels(image.shape, self.config.get("runtime", "max_image_pixels"), "the image")
        t0 = time.perf_counter()
        if masks is None:
            regions = self.segmenter.segment(image)
            seg_ms = (time.perf_counter() - t0) * 1e3
            source = getattr(self.segmenter, "name", type(self.segmenter).__name__)
        else:
            regions, seg_ms, source = masks, 0.0, "caller"
        scene = describe_scene(
            image,
            regions,
            ocr=self.ocr,
            captioner=self.captioner,
            k_neighbours=int(self.config.get("describe", "k_neighbours", 4)),
        )
        scene.timings = {"segment": seg_ms, **scene.timings, "perceive": (time.perf_counter() - t0) * 1e3}
        scene.meta.update({"segmenter": source, "config": self.config.source})
        return scene

    def ask(self, scene: Scene, query: str) -> Answer:
        """Deduces the target regions of ``query`` on a perceived scene."""
        if not isinstance(scene, Scene):
            raise InputError(f"scene must be a gear_edge.types.Scene (from perceive), got {type(scene).__name__}")
        t0 = time.perf_counter()
        answer = self.deducer.deduce(scene, query)
        if answer.centroid_3d is None:  # where the targets are, for a robot (None without depth)
            answer.centroid_3d, answer.box_3d = targets_3d(scene, answer.targets)
        answer.timings["ask"] = (time.perf_counter() - t0) * 1e3
        return answer

    def segment(self, image: np.ndarray, query: str) -> Answer:
        """perceive + ask; the answer's timings include the perception stages."""
        scene = self.perceive(image)
        answer = self.ask(scene, query)
        answer.timings = {**scene.timings, **answer.timings}
        return answer
