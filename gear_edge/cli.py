"""``gear-edge`` command line (an adapter over the library)."""

from __future__ import annotations

import argparse
import json
import platform
import sys

from gear_edge import __version__, _native


def _info(_: argparse.Namespace) -> int:
    cpp = _native.native()
    info = {
        "version": __version__,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "backend": _native.backend(),
        "fallback_reason": _native.fallback_reason(),
        "threads": _native.get_num_threads(),
        "build": cpp.build_info() if cpp is not None else None,
    }
    print(json.dumps(info, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gear-edge", description="On-robot reasoning segmentation (GEAR-Seg).")
    parser.add_argument("--version", action="version", version=f"gear-edge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="show version, native backend and build flags")
    p.set_defaults(func=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
