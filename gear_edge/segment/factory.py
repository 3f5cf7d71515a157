"""The SAM2 segmenter from a Config: ``[segment.sam2]`` engine paths and AMG settings, ``[engines]`` backend."""

from __future__ import annotations

from typing import Any, Callable

from gear_edge.engines.base import Engine
from gear_edge.errors import InputError
from gear_edge.segment.amg import AutomaticMaskGenerator

AMG_KEYS = (
    "points_per_side", "points_per_batch", "pred_iou_thresh", "stability_score_thresh", "box_nms_thresh",
    "min_mask_region_area", "crop_n_layers",
)


def sam2_paths(config: Any) -> dict[str, Any]:
    """``{"encoder": Path, "decoder": Path}`` from ``[segment.sam2]`` (resolved against the config file's
    directory); InputError naming the key when one is unset or missing."""
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
    return paths


def sam2_segmenter_from_config(
    config: Any, engine_factory: Callable[..., Engine] | None = None
) -> AutomaticMaskGenerator:
    """``AutomaticMaskGenerator`` on the encoder / decoder files named in ``[segment.sam2]``.

    ``engine_factory(role, path, key=, sha256=) -> Engine`` builds each engine (default:
    :func:`~gear_edge.engines.engine_from_config` as ``[engines]`` / ``[engines.sam2]`` say). Each file
    is verified before loading: ``encoder_sha256`` / ``decoder_sha256`` when set, else the manifest next
    to the file; a file with neither is refused unless ``[runtime] allow_unverified_models``. AMG
    settings are the config's (schema defaults for keys it leaves out).
    """
    from gear_edge.engines import engine_from_config

    if engine_factory is None:
        def engine_factory(role: str, path: Any, **verify: Any) -> Engine:
            return engine_from_config(path, config, "sam2", **verify)

    paths = sam2_paths(config)
    kwargs = {k: config.get("segment.sam2", k) for k in AMG_KEYS}
    return AutomaticMaskGenerator(
        *(engine_factory(k, paths[k], key=f"segment.sam2.{k}", sha256=config.get("segment.sam2", f"{k}_sha256") or "")
          for k in ("encoder", "decoder")),
        threads=config.get("runtime", "threads"),
        **kwargs,
    )
