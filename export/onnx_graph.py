"""ONNX graph clean-up shared by the exporters (needs the ``onnx`` package of the ``[export]`` extra).

:func:`fold_shape_computations` turns the TorchScript exporter's run-time shape arithmetic into
constants wherever the shapes are static, so onnxruntime's symbolic shape inference (used before
int8 quantisation) and TensorRT see plain graphs; dynamic axes stay dynamic.
"""

from __future__ import annotations

import numpy as np

FOLD_MAX_ELEMENTS = 4096  # constants the shape folding may create (shape arithmetic only, never weights)


def _dims(value_info) -> list[int | None] | None:
    """Known sizes of a tensor (None per dynamic axis), or None when even the rank is unknown."""
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]


def _skeleton(model):
    """The model for shape inference only: large initializers become graph inputs of the same type
    and shape (inference reads their shapes, never their values), so each round copies kilobytes,
    not the weights."""
    from onnx import helper

    small, large = [], []
    for init in model.graph.initializer:
        (small if int(np.prod(init.dims, dtype=np.int64)) <= FOLD_MAX_ELEMENTS else large).append(init)
    graph = helper.make_graph(
        list(model.graph.node), model.graph.name or "skeleton",
        inputs=list(model.graph.input) + [helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in large],
        outputs=list(model.graph.output), initializer=small,
    )
    return helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)


def fold_shape_computations(model, max_rounds: int = 64) -> int:
    """Replaces the tracer's run-time shape arithmetic by constants where the shapes are static.

    The TorchScript exporter records every ``x.shape[i]`` as Shape → Gather → … chains even for a
    fixed-size input; onnxruntime's symbolic shape inference (int8 preprocessing) gets lost in them.
    Each round: ONNX shape inference (with data propagation); every ``Shape`` of a fully static
    tensor, and every ``Gather`` of static axes from a ``Shape``, becomes a Constant, and every node
    whose inputs are all small constants is evaluated with ``onnx.reference`` and replaced by its
    result (≤ ``FOLD_MAX_ELEMENTS`` values each). Dynamic axes stay dynamic. Unused nodes and
    initializers are dropped. Returns the number of nodes folded.
    """
    import onnx
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator

    graph = model.graph
    folded = 0
    for _ in range(max_rounds):
        inferred = onnx.shape_inference.infer_shapes(_skeleton(model), data_prop=True)
        shapes = {vi.name: _dims(vi) for vi in
                  list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
        shapes.update({init.name: list(init.dims) for init in graph.initializer})
        shape_of: dict[str, list[int | None]] = {}  # Shape node output → the sizes it reports
        const = {i.name: numpy_helper.to_array(i) for i in graph.initializer
                 if int(np.prod(i.dims, dtype=np.int64)) <= FOLD_MAX_ELEMENTS}
        nodes, changed = [], 0
        for node in graph.node:
            values = None
            has_subgraph = any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute)
            if node.op_type == "Constant":
                v = np.asarray(ReferenceEvaluator(node).run(None, {})[0])
                if v.size <= FOLD_MAX_ELEMENTS:
                    const[node.output[0]] = v
            elif node.op_type == "Shape" and shapes.get(node.input[0]) is not None:
                attrs = {a.name: a.i for a in node.attribute}
                dims = shapes[node.input[0]][attrs.get("start", 0):attrs.get("end", len(shapes[node.input[0]]))]
                if all(d is not None for d in dims):
                    values = [np.array(dims, np.int64)]
                else:
                    shape_of[node.output[0]] = dims
            elif (node.op_type == "Gather" and node.input[0] in shape_of and node.input[1] in const
                  and all(a.i == 0 for a in node.attribute if a.name == "axis")):
                dims, idx = shape_of[node.input[0]], np.asarray(const[node.input[1]])
                picked = [dims[int(i)] for i in idx.reshape(-1)] if all(-len(dims) <= int(i) < len(dims) for i in idx.reshape(-1)) else [None]
                if all(d is not None for d in picked):
                    values = [np.array(picked, np.int64).reshape(idx.shape)]
            elif (node.domain in ("", "ai.onnx") and not has_subgraph and node.input
                  and all(not i or i in const for i in node.input)):
                try:
                    values = ReferenceEvaluator(node).run(None, {i: const[i] for i in node.input if i})
                except Exception:  # an op the reference runtime lacks: leave it to the runtime
                    values = None
                if values is not None and any(np.size(v) > FOLD_MAX_ELEMENTS for v in values):
                    values = None
            if values is None:
                nodes.append(node)
                continue
            for name, v in zip(node.output, values):
                v = np.asarray(v)
                nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(v, name)))
                const[name] = v
            changed += 1
        del graph.node[:]
        graph.node.extend(nodes)
        folded += changed
        if not changed:
            break
    needed = {o.name for o in graph.output}
    keep = []
    for node in reversed(list(graph.node)):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    del graph.node[:]
    graph.node.extend(reversed(keep))
    inits = [i for i in graph.initializer if i.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    return folded


__all__ = ["FOLD_MAX_ELEMENTS", "fold_shape_computations"]
