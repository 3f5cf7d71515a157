"""The SAM2 segmenter from a Config: ``[segment.sam2]`` engine paths and AMG settings, ``[engines]`` backend."""

from __future__ import annotations

from typing import Any

from gear_edge.errors import InputError
from gear_edge.segment.amg import AutomaticMaskGenerator

AMG_KEYS = (
    "points_per_side", "points_per_batch", "pred_iou_thresh", "stability_score_thresh", "box_nms_thresh",
    "min_mask_region_area", "crop_n_layers",
)


def sam2_segmenter_from_config(config: Any) -> AutomaticMaskGenerator:
    """``AutomaticMaskGenerator`` on the encoder / decoder files named in ``[segment.sam2]``.

    Paths resolve against the config file's directory; each engine is built as ``[engines]`` says
    (backend, providers, precision, plan_dir) with ``[runtime] threads`` threads, and verified before
    loading: ``encoder_sha256`` / ``decoder_sha256`` when set, else the manifest next to the file; a file
    with neither is refused unless ``[runtime] allow_unverified_models``.
    """
    from gear_edge.engines import engine_from_config

    paths = {}
    for key in ("encoder", "decoder"):
        path = config.path("segment.sam2", key)
        if path is None:
            raise InputError(
                f"{config.source}: [segment.sam2] {key} is not set; export SAM2 with export/sam2_onnx.py "
                "and give its path"
            )
        if not path.is_file():
            raise InputError(
                f"{config.source}: [segment.sam2] {key} = {path} does not exist; export SAM2 with "
                f"export/sam2_onnx.py (or pass --set segment.sam2.{key}=PATH)"
            )
        paths[key] = path
    settings = config.section("segment.sam2")
    kwargs = {k: settings[k] for k in AMG_KEYS if k in settings}
    return AutomaticMaskGenerator(
        *(engine_from_config(paths[k], config, key=f"segment.sam2.{k}", sha256=config.get("segment.sam2", f"{k}_sha256") or "")
          for k in ("encoder", "decoder")),
        threads=config.get("runtime", "threads"),
        **kwargs,
    )
