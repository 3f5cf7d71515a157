"""``gear-edge ros``: start the ROS 2 node (imports rclpy only when run).

ROS arguments go after ``--ros-args`` as ROS users type them (no ``--`` needed), e.g.
``gear-edge ros --ros-args -p config:=default -r image:=/camera/color/image_raw --params-file p.yaml``.
"""

from __future__ import annotations

import argparse

from gear_edge.errors import MissingDependencyError

EPILOG = """examples:
  gear-edge ros
  gear-edge ros --ros-args -r image:=/camera/color/image_raw -r depth:=/camera/aligned_depth_to_color/image_raw \\
      -r camera_info:=/camera/color/camera_info -p image_reliability:=best_effort
  gear-edge ros --ros-args --params-file ros/params/gear_edge.yaml
parameters: see ros/params/gear_edge.yaml (every one, with its default)"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.description = "Run the gear_edge ROS 2 lifecycle node (configured and activated at start)."
    p.epilog = EPILOG
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("--config", default=None, help="profile name or TOML file (default: the 'config' parameter, 'default')")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one config key (repeatable)")
    p.add_argument("--threads", type=int, default=4, help="executor threads (default 4)")
    p.add_argument("ros_args", nargs=argparse.REMAINDER, help="--ros-args ... (passed to ROS)")


def cli(args: argparse.Namespace) -> int:
    try:
        from gear_edge.ros.node import run
    except ImportError as exc:
        raise MissingDependencyError(
            f"the ROS 2 node needs rclpy ({exc}): pip install 'gear-edge[ros]' "
            "(ROS 2 Kilted wheels from PyPI, CPython 3.11) or source a ROS 2 install"
        ) from exc
    ros_args = [a for a in (args.ros_args or []) if a != "--"]
    return run(args.config, args.set or [], ros_args, threads=args.threads)
