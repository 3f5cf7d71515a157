"""Training tools (``gear-edge train-deducer``): never imported by the runtime ``gear_edge``.

:mod:`train.lora_gguf` (numpy + the ``gguf`` package) writes llama.cpp LoRA adapter GGUFs;
:mod:`train.deducer` (torch, transformers, peft: the ``[train]`` extra) trains a LoRA for the direct
deducer on the data engine's examples (:mod:`gear_edge.data_engine.deducer_data`).
"""
