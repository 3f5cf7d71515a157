"""Shared fixtures: backend switching, hypothesis profiles, real images and segmentations."""

from __future__ import annotations

import os
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from gear_edge import _native

settings.register_profile("default", max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

BACKENDS = ["cpp", "numpy"]


def pytest_report_header(config):
    cpp = _native.native()
    build = cpp.build_info() if cpp is not None else None
    return [f"gear_edge backend: {_native.backend()} ({_native.fallback_reason() or 'extension loaded'}); build: {build}"]


def pytest_sessionstart(session):
    if os.environ.get("GEAR_EDGE_REQUIRE_CPP") == "1" and _native.native() is None:
        raise pytest.UsageError(
            f"GEAR_EDGE_REQUIRE_CPP=1 but the C++ extension is not in use: {_native.fallback_reason()}"
        )


@contextmanager
def use_backend(name: str):
    """Runs the facades (gear_edge.masks / gear_edge.crops) on the named backend."""
    if name == "cpp":
        if _native.native() is None:
            pytest.skip(f"C++ extension not built: {_native.fallback_reason()}")
        yield
    elif name == "numpy":
        with mock.patch.object(_native, "native", lambda: None):
            yield
    else:
        raise ValueError(name)


def _load_skimage(name: str) -> np.ndarray:
    import skimage.data

    return getattr(skimage.data, name)()


@pytest.fixture(scope="session")
def real_images() -> dict[str, np.ndarray]:
    """RGB uint8 photos shipped inside scikit-image (no download)."""
    return {name: _load_skimage(name) for name in ("astronaut", "coffee", "chelsea", "rocket")}


def segment_regions(image: np.ndarray, max_regions: int = 40, min_area: int = 50) -> np.ndarray:
    """Real, irregular region masks of a photo: Felzenszwalb graph segmentation, largest first."""
    from skimage.segmentation import felzenszwalb

    labels = felzenszwalb(image, scale=300, sigma=0.8, min_size=min_area)
    counts = np.bincount(labels.ravel())
    order = [int(i) for i in np.argsort(-counts) if counts[i] >= min_area][:max_regions]
    return np.stack([labels == i for i in order])


@pytest.fixture(scope="session")
def real_masks(real_images) -> dict[str, np.ndarray]:
    """bool [N, H, W] region masks per image (Felzenszwalb segmentation)."""
    return {name: segment_regions(img) for name, img in real_images.items()}
