"""``gear-edge train-deducer {data,train} ...``: direct-deducer training data and its LoRA.

``data OUT``: verified examples from the data engine (numpy only; :mod:`gear_edge.data_engine.deducer_data`).
``train DATA OUT``: LoRA on the shipped GGUF's weights, exported as a llama.cpp adapter + manifest
(:mod:`train.deducer`; needs the ``[train]`` extra: torch, transformers, peft, gguf — imported only
when it runs, and a missing one is named with how to install it).
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
    d.add_argument("--no-progress", action="store_true")
    t = sub.add_parser("train", help="train the LoRA and export it as a llama.cpp adapter GGUF + manifest")
    from train.deducer import add_train_arguments

    add_train_arguments(t)


def cli(args: argparse.Namespace) -> int:
    import json

    if args.what == "data":
        from gear_edge.data_engine.deducer_data import Settings, write_dataset

        state = write_dataset(args.out, Settings(seed=args.seed, train_scenes=args.scenes,
                                                 heldout_scenes=args.heldout_scenes, per_class=args.per_class),
                              progress=None if args.no_progress else print)
        print(json.dumps({s: {k: v for k, v in st.items() if k != "bytes"} for s, st in state["splits"].items()}))
        return 0
    from train.deducer import train

    info = train(args)
    print(json.dumps({k: info[k] for k in ("loss_start", "loss_end", "heldout_loss_start", "heldout_loss_end", "steps",
                                           "adapter", "adapter_bytes", "stopped", "seconds", "export_check") if k in info}))
    return 0
