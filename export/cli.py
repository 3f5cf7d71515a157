"""``gear-edge export {sam2,captioner} ...``: the exporters behind one subcommand.

The arguments after the model name go to ``python -m export.sam2_onnx`` / ``python -m
export.captioner_onnx`` unchanged (``gear-edge export sam2 --help`` lists them). The exporters, and
with them torch, are imported only when the subcommand runs.
"""

from __future__ import annotations

import argparse
import importlib

EXPORTERS = {
    "sam2": "export.sam2_onnx",
    "captioner": "export.captioner_onnx",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", choices=sorted(EXPORTERS), help="what to export")
    p.add_argument("args", nargs=argparse.REMAINDER, help="the exporter's own arguments (see --help after the model)")


def cli(args: argparse.Namespace) -> int:
    from gear_edge.errors import MissingDependencyError

    try:
        module = importlib.import_module(EXPORTERS[args.model])
    except ImportError as exc:
        from gear_edge.cli import EXPORT_INSTALL

        raise MissingDependencyError(
            f"exporting {args.model} needs the [export] extra ({exc.name or exc} is missing): {EXPORT_INSTALL}") from exc
    return int(module.main(list(args.args)) or 0)
