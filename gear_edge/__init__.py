"""gear_edge — on-robot runtime for reasoning segmentation (GEAR-Seg: segment, describe, deduce).

Importing the package is cheap and imports no optional extra (torch, tensorrt, llama_cpp, rclpy);
features that need one say which extra to install when they are used.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
