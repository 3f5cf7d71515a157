"""GearSeg: segment → describe → deduce on the components a Config describes.

    gs = GearSeg.from_config("default")
    gs.load()                                  # optional: build every model now (load time, RSS each)
    scene = gs.perceive(image)                 # once per frame
    answer = gs.ask(scene, "the red box")      # many queries per scene (the LLM reuses the scene prefix)
    answer = gs.segment(image, "the red box")  # both at once

The components (segmenter, OCR reader, captioner, embedder, LLM, deducer) come from
:class:`gear_edge.assemble.Assembly`, built on first use unless :meth:`GearSeg.load` builds them
eagerly; callers may pass their own (``GearSeg(config, segmenter=..., deducer=...)``). Each scene's
and answer's ``meta["engines"]`` says which providers every model of that stage ran on.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from gear_edge.assemble import Assembly, LoadReport
from gear_edge.config import Config, load_config
from gear_edge.crops import check_image
from gear_edge.describe.scene import describe_scene
from gear_edge.errors import InputError
from gear_edge.types import RLE, Answer, Region, Scene, targets_3d

PERCEIVE_ENGINES = ("sam2.", "ocr.", "captioner.")  # the engine families of perceive; the rest serve ask


class GearSeg:
    """The reasoning-segmentation pipeline. ``ask`` may be called from several threads: components
    are built once under a lock and the LLM serialises its calls (llama.cpp state is not shareable).

    ``components``: any of ``segmenter``, ``ocr``, ``captioner``, ``embedder``, ``llm``, ``deducer``
    to use instead of building them from ``config``.
    """

    def __init__(self, config: Config, **components: Any) -> None:
        self.config = config
        self.parts = Assembly(config, **components)

    @classmethod
    def from_config(cls, path_or_profile: str | Path = "default", overrides: Mapping[str, Any] | None = None, **components) -> "GearSeg":
        return cls(load_config(path_or_profile, overrides), **components)

    def load(self) -> list[LoadReport]:
        """Builds every component the config uses now; one :class:`LoadReport` (load time in ms,
        resident-memory growth in MiB, engines and their providers) per component."""
        return self.parts.load()

    # ---- components (built on first use) ------------------------------------------------------

    @property
    def threads(self) -> int:
        return int(self.config.get("runtime", "threads"))

    @property
    def segmenter(self):
        return self.parts.segmenter

    @property
    def ocr(self):
        return self.parts.ocr

    @property
    def captioner(self):
        return self.parts.captioner

    @property
    def llm(self):
        """The local LLM (llama.cpp), shared by the deducer and the data engine's question writer."""
        return self.parts.llm

    @property
    def deducer(self):
        return self.parts.deducer

    # ---- stages -------------------------------------------------------------------------------

    def perceive(self, image: np.ndarray, masks: Sequence[RLE] | Sequence[Region] | np.ndarray | None = None, *,
                 depth: np.ndarray | None = None, intrinsics=None, depth_scale: float | None = None) -> Scene:
        """Regions (own segmenter, or the caller's masks), exact attributes, roles, relations, OCR text,
        captions; with ``depth`` + ``intrinsics`` also the support plane and 3D attributes.

        ``depth``: [H, W] registered to ``image``, float metres or uint16 millimetres (``depth_scale``
        metres per unit overrides); NaN / 0 = no depth (see ``gear_edge.camera``). ``intrinsics``: a
        3x3 K, CameraInfo's 9-list ``k`` or :class:`gear_edge.camera.CameraIntrinsics`. The classical
        segmenter then segments from depth too (``gear_edge.segment.rgbd``); other segmenters' and
        the caller's masks get roles and 3D attributes from depth."""
        image = check_image(image)
        from gear_edge.io import check_pixels

        check_pixels(image.shape, self.config.get("runtime", "max_image_pixels"), "the image")
        depth_m = intr = plane = roles = None
        if depth is not None or intrinsics is not None:
            from gear_edge.segment.rgbd import prepare_depth

            depth_m, intr = prepare_depth(depth, intrinsics, image.shape[:2], depth_scale)
        t0 = time.perf_counter()
        if masks is None:
            if depth_m is not None and hasattr(self.segmenter, "segment_rgbd"):
                regions, roles, plane = self.segmenter.segment_rgbd(image, depth_m, intr)
            else:
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
            k_neighbours=int(self.config.get("describe", "k_neighbours")),
            roles=roles,
            captions=self.config.get("describe", "captions"),
        )
        if depth_m is not None:
            from gear_edge.segment.rgbd import attach_3d

            t1 = time.perf_counter()
            attach_3d(scene, depth_m, intr, plane, roles_from_depth_too=roles is None)
            scene.timings["describe.3d"] = (time.perf_counter() - t1) * 1e3
        scene.timings = {"segment": seg_ms, **scene.timings, "perceive": (time.perf_counter() - t0) * 1e3}
        engines = {k: v for k, v in self.parts.providers().items() if k.startswith(PERCEIVE_ENGINES)}
        scene.meta.update({"segmenter": source, "config": self.config.source, "engines": engines})
        return scene

    def ask(self, scene: Scene, query: str) -> Answer:
        """Deduces the target regions of ``query`` on a perceived scene."""
        if not isinstance(scene, Scene):
            raise InputError(f"scene must be a gear_edge.types.Scene (from perceive), got {type(scene).__name__}")
        t0 = time.perf_counter()
        from gear_edge.deduce.base import NO_CRITERION, content_free, finish_answer, validate_query

        if content_free(validate_query(query)):  # "???", "the", an emoji: nothing to look for, nothing answered
            answer = finish_answer(scene, query, [], [NO_CRITERION], str(self.config.get("deduce", "mode")))
            answer.timings["ask"] = (time.perf_counter() - t0) * 1e3
            return answer
        captioned = scene.meta.get("captions", {}).get("captioned", 0)
        if not getattr(self.deducer, "captions_on_demand", False):
            scene.captions()  # a deducer that reads every region's line needs every caption
        answer = self.deducer.deduce(scene, query)
        if scene.caption_source is not None:  # regions this query had captioned (0: cached, or none read)
            answer.meta["captioned_regions"] = scene.meta.get("captions", {}).get("captioned", 0) - captioned
        if answer.centroid_3d is None:  # where the targets are, for a robot (None without depth)
            answer.centroid_3d, answer.box_3d = targets_3d(scene, answer.targets)
        answer.timings["ask"] = (time.perf_counter() - t0) * 1e3
        engines = {k: v for k, v in self.parts.providers().items() if not k.startswith(PERCEIVE_ENGINES)}
        answer.meta.setdefault("engines", {}).update(engines)
        return answer

    def segment(self, image: np.ndarray, query: str) -> Answer:
        """perceive + ask; the answer's timings include the perception stages, its meta their engines."""
        scene = self.perceive(image)
        answer = self.ask(scene, query)
        answer.timings = {**scene.timings, **answer.timings}
        answer.meta["engines"] = {**scene.meta.get("engines", {}), **answer.meta.get("engines", {})}
        return answer
