"""Export tools (need the ``[export]`` extra): models → ONNX, quantisation, TensorRT engine builds.

Never imported by the runtime package ``gear_edge``; run the modules with ``python -m export.<name>``.
"""
