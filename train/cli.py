"""``gear-edge train-deducer {data,train} ...``: direct-deducer training data and its LoRA.

``data OUT``: verified examples from the data engine (numpy only; :mod:`gear_edge.data_engine.deducer_data`).
``train DATA OUT``: LoRA on the shipped GGUF's weights, exported as a llama.cpp adapter + manifest
(:mod:`train.deducer`; needs the ``[train]`` extra: torch, transformers, peft, gguf — imported only
when it runs, and a missing one is named with how to install it).
``eval DATA``: the direct deducer (the runtime's, on llama.cpp; no torch) on a split's examples,
with the shipped adapter, your own or none (:func:`gear_edge.data_engine.deducer_data.evaluate_direct`).
"""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="what", required=True)
    d = sub.add_parser("data", help="write train.jsonl / heldout.jsonl (resumable, deterministic by --seed)")
    d.add_argument("out", help="output folder")
    d.add_argument("--scenes", type=int, default=200, help="training scenes")
    d.add_argument("--heldout-scenes", type=int, default=40, help="held-out scenes (separate phrasings and seeds)")
    d.add_argument("--per-class", type=int, default=2, help="questions per taxonomy class per scene")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--task", choices=("direct", "program"), default="direct",
                   help="direct: (scene, question) -> ids; program: question -> compact program (translator)")
    d.add_argument("--no-progress", action="store_true")
    e = sub.add_parser("eval", help="direct-mode accuracy on a split, or program mode with --task program "
                                    "(llama.cpp, no torch)")
    e.add_argument("--task", choices=("direct", "program"), default="direct")
    e.add_argument("--all", action="store_true",
                   help="program task: every example, not only those that reach the LLM")
    e.add_argument("data", help="a folder from 'train-deducer data' or one JSONL file")
    e.add_argument("--split", default="heldout", choices=("heldout", "train"))
    e.add_argument("--adapter", default="auto",
                   help="'auto' (the shipped adapter), 'none', or a LoRA GGUF (its manifest next to it)")
    e.add_argument("--limit", type=int, default=120, help="an even sample of this many examples (0: all)")
    e.add_argument("--threads", type=int, default=0, help="llama.cpp threads (0: the runtime default)")
    e.add_argument("--out", default=None, help="also write the result (with every row) to this JSON file")
    t = sub.add_parser("train", help="train the LoRA and export it as a llama.cpp adapter GGUF + manifest")
    from train.deducer import add_train_arguments

    add_train_arguments(t)


def cli(args: argparse.Namespace) -> int:
    import json

    if args.what == "data":
        from gear_edge.data_engine.deducer_data import Settings
        from gear_edge.data_engine.deducer_data import write_dataset as direct_data
        from gear_edge.data_engine.program_data import write_dataset as program_data

        write_dataset = program_data if args.task == "program" else direct_data
        state = write_dataset(args.out, Settings(seed=args.seed, train_scenes=args.scenes,
                                                 heldout_scenes=args.heldout_scenes, per_class=args.per_class),
                              progress=None if args.no_progress else print)
        print(json.dumps({s: {k: v for k, v in st.items() if k != "bytes"} for s, st in state["splits"].items()}))
        return 0
    if args.what == "eval":
        return _eval(args)
    from train.deducer import train

    info = train(args)
    print(json.dumps({k: info[k] for k in ("loss_start", "loss_end", "heldout_loss_start", "heldout_loss_end", "steps",
                                           "adapter", "adapter_bytes", "stopped", "seconds", "export_check") if k in info}))
    return 0


def _eval(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from gear_edge.data_engine.deducer_data import EVAL_KEYS, evaluate_direct, read_examples
    from gear_edge.deduce.direct import DirectDeducer
    from gear_edge.deduce.llm import DIRECT_ADAPTER, LocalLLM
    from gear_edge.io import write_atomic
    from gear_edge.manifest import Manifest

    path = Path(args.data)
    if path.is_dir():
        path = path / f"{args.split}.jsonl"
    if args.task == "program":
        return _eval_program(args, path)
    examples = read_examples(path, EVAL_KEYS)
    adapter, manifest = args.adapter, None
    if adapter == "auto":
        manifest = Manifest.named(DIRECT_ADAPTER)
        adapter = manifest.verify(manifest.locate())
    elif adapter == "none":
        adapter = None
    llm = LocalLLM(threads=args.threads or None, lora_path=adapter, lora_manifest=manifest)
    result = evaluate_direct(examples, DirectDeducer(llm), limit=args.limit, progress=print)
    result["data"] = str(path)
    result["adapter"] = None if adapter is None else str(adapter)
    if args.out:
        write_atomic(args.out, (json.dumps(result, indent=1) + "\n").encode())
    print(json.dumps({k: v for k, v in result.items() if k not in ("rows", "per_family")}, indent=1))
    return 0


def _eval_program(args: argparse.Namespace, path) -> int:
    """Program mode on the queries that reach the LLM: LLM off, the base model translating, and the
    adapter translating (``--adapter``: auto = the shipped program adapter, none = skip it, or a file)."""
    import json

    from gear_edge.data_engine.deducer_data import read_examples
    from gear_edge.data_engine.program_data import EVAL_KEYS, evaluate_program
    from gear_edge.deduce.llm import PROGRAM_ADAPTER, LocalLLM
    from gear_edge.deduce.program.deducer import ProgramDeducer
    from gear_edge.io import write_atomic
    from gear_edge.manifest import Manifest

    examples = read_examples(path, EVAL_KEYS)
    threads = args.threads or None
    deducers = {"llm_off": ProgramDeducer(llm=None, embedder=None),
                "base": ProgramDeducer(llm=LocalLLM(threads=threads), embedder=None, llm_use="always",
                                       llm_role="translate")}
    adapter, manifest = args.adapter, None
    if adapter == "auto":
        manifest = Manifest.named(PROGRAM_ADAPTER)
        adapter = manifest.verify(manifest.locate())
    if adapter != "none":
        llm = LocalLLM(threads=threads, lora_path=adapter, lora_manifest=manifest)
        deducers["tuned"] = ProgramDeducer(llm=llm, embedder=None, llm_use="always", llm_role="translate")
    result = evaluate_program(examples, deducers, reaching_only=not args.all, limit=args.limit, progress=print)
    result["data"] = str(path)
    result["adapter"] = None if adapter == "none" else str(adapter)
    if args.out:
        write_atomic(args.out, (json.dumps(result, indent=1) + "\n").encode())
    print(json.dumps(result["by_deducer"], indent=1))
    return 0
