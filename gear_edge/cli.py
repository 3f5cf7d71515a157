"""``gear-edge`` command line (an adapter over the library: parsing, files, progress, printing)."""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

from gear_edge import __version__, _native
from gear_edge.errors import GearEdgeError, InputError

DEFAULT_NOTE = """\
The embedded default profile uses only models that install from PyPI: a classical segmenter
(scikit-image graph segmentation; finds colour-distinct regions, not SAM-quality objects), exact
attributes and relations, OCR (PP-OCRv4), and SmolLM2-135M for deduction. It can answer queries about
colour, size, position, shape, text printed on things, and spatial relations; it cannot name objects
it has no words for (no captioner ships by default). Switch to --config sam2 after exporting SAM2
(gear-edge export sam2 ...) for real object masks."""

DEMO_IMAGE = "coffee"  # scikit-image's bundled photo of a cup of coffee on a saucer
DEMO_QUERIES = (
    "the white object at the top",
    "the orange region inside the white object",
    "the largest object",
    "the black thing in the top-left corner",
    "the purple elephant",
)


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


def _overrides(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        if "=" not in item:
            raise InputError(f"--set {item!r}: expected section.key=value (e.g. deduce.mode=direct)")
        k, v = item.split("=", 1)
        out[k.strip()] = v.strip()
    return out


def _pipeline(args: argparse.Namespace):
    from gear_edge.pipeline import GearSeg

    return GearSeg.from_config(args.config, _overrides(args.set))


def output_dir(path: str | Path, flag: str = "--out") -> Path:
    """The output folder, checked before any work: InputError when it names a file or cannot be
    written (nothing is created here; :func:`_run_queries` creates it when the outputs are ready)."""
    import os

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise InputError(f"{flag} {out} is a file, not a directory; give a folder for the outputs")
    probe = out
    while not probe.exists():  # the nearest existing folder must let us create the rest
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(f"{flag} {out}: {probe} is a file, so the folder cannot be created")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {out} is not writable ({probe} does not allow it); choose another folder")
    return out


def _run_queries(gs, image, queries: list[str], out_dir: Path, stem: str) -> int:
    """Perceives ``image``, answers ``queries`` and writes the scene, the answers and one overlay per
    answer: all of them or, when anything fails, none (nothing is written before everything is ready)."""
    from tqdm import tqdm

    from gear_edge.io import encode_png, write_all_or_nothing
    from gear_edge.viz import render_answer

    t0 = time.perf_counter()
    scene = gs.perceive(image)
    print(f"perceived {len(scene.regions)} regions in {(time.perf_counter() - t0) * 1e3:.0f} ms "
          + " ".join(f"{k}={v:.0f}ms" for k, v in scene.timings.items()))
    files: dict[Path, bytes] = {}
    answers, failures, lines = [], 0, []
    for i, query in enumerate(tqdm(queries, desc="queries", unit="q", disable=len(queries) < 2)):
        try:
            answer = gs.ask(scene, query)
        except GearEdgeError as exc:  # one bad query never loses the scene or the other answers
            failures += 1
            print(f"  [{i}] {query!r}: error: {exc}", file=sys.stderr)
            answers.append({"query": query, "error": str(exc)})
            continue
        answers.append(answer.to_dict())
        png = out_dir / f"{stem}.q{i}.png"
        files[png] = encode_png(render_answer(image, scene, answer))
        chain = " | ".join(s.text for s in answer.steps)
        lines.append(f"  [{i}] {query!r} -> {['R%d' % t for t in answer.targets]}  "
                     f"({answer.timings.get('ask', 0):.0f} ms)  {chain}\n       overlay: {png}")
    files[out_dir / f"{stem}.scene.json"] = scene.to_json(indent=1).encode()
    files[out_dir / f"{stem}.answers.json"] = json.dumps(answers, indent=1).encode()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_all_or_nothing(files)
    except OSError as exc:
        raise InputError(f"cannot write the outputs to {out_dir} ({exc.strerror or exc}); nothing was written") from None
    for line in lines:
        print(line)
    print(f"wrote {out_dir / (stem + '.scene.json')} and {out_dir / (stem + '.answers.json')}")
    return 1 if failures else 0


def _demo_image(name: str):
    """A scikit-image bundled photo by name, or an image file when ``name`` is a path."""
    import numpy as np
    import skimage.data

    if name in getattr(skimage.data, "__all__", ()) and not Path(name).suffix:
        try:
            image = getattr(skimage.data, name)()
        except Exception as exc:  # noqa: BLE001 - some bundled images need a download (pooch)
            raise InputError(f"--image {name}: scikit-image cannot load it here ({exc})") from None
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3) or image.dtype != np.uint8:
            raise InputError(f"--image {name} is not a 2-D photo (it is {getattr(image, 'shape', '?')})")
        if image.ndim == 2:
            image = np.ascontiguousarray(np.repeat(image[..., None], 3, axis=2))
        elif image.shape[2] == 4:
            image = np.ascontiguousarray(image[..., :3])
        return image
    if Path(name).suffix or "/" in name or Path(name).exists():
        from gear_edge.io import read_image

        return read_image(name)
    photos = ", ".join(n for n in ("astronaut", "coffee", "chelsea", "rocket", "camera"))
    raise InputError(f"--image {name!r} is neither a scikit-image photo (e.g. {photos}) nor an image file")


def _demo(args: argparse.Namespace) -> int:
    out = output_dir(args.out)
    print(DEFAULT_NOTE if args.config == "default" else f"config: {args.config}")
    gs = _pipeline(args)
    image = _demo_image(args.image)
    stem = f"demo_{Path(args.image).stem}"
    return _run_queries(gs, image, list(args.query or DEMO_QUERIES), out, stem)


def _segment(args: argparse.Namespace) -> int:
    from gear_edge.io import read_image

    out = output_dir(args.out)
    gs = _pipeline(args)  # config errors first; its pixel cap applies to the file
    image = read_image(args.image, max_pixels=gs.config.get("runtime", "max_image_pixels"))
    return _run_queries(gs, image, [args.query], out, Path(args.image).stem)


def _add_pipeline_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="default", help="profile name (default, sam2) or a TOML file")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one config key (repeatable)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gear-edge",
        description="On-robot reasoning segmentation (GEAR-Seg): segment -> describe -> deduce.",
        epilog=DEFAULT_NOTE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"gear-edge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="show version, native backend and build flags")
    p.set_defaults(func=_info)

    p = sub.add_parser("demo", help="run a profile on a bundled photo with example queries; writes overlays + JSON",
                       epilog=DEFAULT_NOTE, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", default=DEMO_IMAGE, help="a scikit-image bundled photo name (default: coffee) or an image file")
    p.add_argument("--query", action="append", help="a query (repeatable; default: the built-in examples)")
    p.add_argument("--out", default="results/demo", help="output directory")
    _add_pipeline_args(p)
    p.set_defaults(func=_demo)

    p = sub.add_parser("segment", help="answer one query on an image file; writes the overlay PNG + answer JSON")
    p.add_argument("image", help="image file (PNG/JPEG/...)")
    p.add_argument("query", help='e.g. "the red box on the table"')
    p.add_argument("--out", default="results/segment", help="output directory")
    _add_pipeline_args(p)
    p.set_defaults(func=_segment)

    _mount_optional(sub)
    return parser


EXPORT_INSTALL = ("pip install 'gear-edge[export]' (torch, onnx, transformers), then "
                  "SAM2_BUILD_CUDA=0 pip install --no-build-isolation sam2==1.1.0 for SAM2; from a source "
                  "checkout: bash scripts/setup_export.sh")


def _mount_optional(sub) -> None:
    """Subcommands whose modules add their own arguments. Every one is mounted: the modules import
    only numpy and gear_edge at the top (their heavy dependencies load when the subcommand runs), so
    an ImportError here is a broken install and propagates, except a missing ``export`` package (a
    gear_edge installed without its export tools) or ``train`` package, whose subcommands then say what
    to install."""
    import importlib

    for name, module, help_text in (
        ("data-engine", "gear_edge.data_engine.run", "generate verified QA-mask pairs from a folder of images"),
        ("eval", "gear_edge.eval.run", "gIoU / cIoU of a profile on a dataset"),
        ("ros", "gear_edge.ros.cli", "run the ROS 2 node (needs the [ros] extra)"),
        ("bench", "gear_edge.bench", "latency benchmark of every stage and the whole loop"),
        ("build-engine", "export.build_engine", "ONNX -> TensorRT plan with an engine cache (needs TensorRT)"),
        ("export", "export.cli", "export SAM2 / the captioner to ONNX (needs the [export] extra)"),
        ("train-deducer", "train.cli", "direct-deducer training data and its LoRA adapter (training needs [train])"),
    ):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if module.split(".")[0] not in ("export", "train") or exc.name != module.split(".")[0]:
                raise
            p = sub.add_parser(name, help=help_text + " [not installed]", add_help=False)
            p.add_argument("args", nargs=argparse.REMAINDER)
            p.set_defaults(func=_missing_export(name) if module.startswith("export.") else _missing_train(name))
            continue
        p = sub.add_parser(name, help=help_text)
        mod.add_arguments(p)
        p.set_defaults(func=mod.cli)


def _missing_export(name: str):
    def run(_: argparse.Namespace) -> int:
        from gear_edge.errors import MissingDependencyError

        raise MissingDependencyError(f"'gear-edge {name}' needs the export tools (the 'export' package), which "
                                     f"this installation lacks: {EXPORT_INSTALL}")

    return run


def _missing_train(name: str):
    def run(_: argparse.Namespace) -> int:
        from gear_edge.errors import MissingDependencyError

        raise MissingDependencyError(f"'gear-edge {name}' needs the training tools (the 'train' package), which "
                                     "this installation lacks: install gear-edge from a source checkout with "
                                     "pip install '.[train]'")

    return run


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    ros_args: list[str] = []
    if argv[:1] == ["ros"] and "--ros-args" in argv:  # ROS users type --ros-args without a "--" first
        k = argv.index("--ros-args")
        argv, ros_args = argv[:k], argv[k:]
    args = parser.parse_args(argv)
    if ros_args:
        args.ros_args = ros_args + list(getattr(args, "ros_args", None) or [])
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args))
    except GearEdgeError as exc:
        print(f"gear-edge {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"gear-edge {args.command}: error: out of memory (lower runtime.max_image_pixels or use a smaller "
              "image)", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
