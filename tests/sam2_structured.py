"""The structured SAM2 decoder of the AMG parity proof lives in :mod:`export.sam2_structured` (torch side,
shared with benchmarks/bench_segment.py); re-exported here for the tests."""

from export.sam2_structured import *  # noqa: F401,F403
from export.sam2_structured import (  # noqa: F401
    StructuredCore,
    export_structured_decoder,
    install_into_sam2,
    label_maps,
)
