"""Shared by the data engine / eval tests: small real photos on disk and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry")


def write_photos(folder: Path, names=PHOTOS, width: int = 112) -> list[str]:
    """scikit-image's bundled photos, downscaled to ``width`` px, as PNG files in ``folder``."""
    import skimage.data

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in names:
        img = getattr(skimage.data, name)()
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        img = img[..., :3]
        h = max(8, round(width * img.shape[0] / img.shape[1]))
        small = cv2.resize(img, (width, h), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(folder / f"{name}.png"), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        out.append(f"{name}.png")
    return out


def engine_cmd(images: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "gear_edge.cli", "data-engine", str(images), str(out), "--no-progress", *extra]


def engine_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("GEAR_EDGE_NUM_THREADS", None)
    return env


def run_engine(images: Path, out: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(engine_cmd(images, out, *extra), cwd=REPO, env=engine_env(), capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"data-engine failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc
