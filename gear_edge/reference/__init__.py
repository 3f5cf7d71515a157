"""Pure-numpy (and cv2) reference implementations of every C++ op in ``gear_edge._cpp``.

They are the fallback when the extension is not built and the oracles the C++ code is tested
against. Clear over fast.
"""
