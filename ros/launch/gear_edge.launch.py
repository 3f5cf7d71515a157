"""ROS 2 launch description for the gear_edge node (needs launch / launch_ros, i.e. a ROS 2 install:
they are not on PyPI). Without them, the same node and parameters run with
``gear-edge ros --ros-args --params-file ros/params/gear_edge.yaml`` (configured + activated at start).

    ros2 launch ros/launch/gear_edge.launch.py params_file:=ros/params/gear_edge.yaml \\
        image:=/camera/color/image_raw depth:=/camera/aligned_depth_to_color/image_raw \\
        camera_info:=/camera/color/camera_info
"""

from pathlib import Path

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

HERE = Path(__file__).resolve().parent


def generate_launch_description() -> LaunchDescription:
    args = [
        DeclareLaunchArgument("params_file", default_value=str(HERE.parent / "params" / "gear_edge.yaml")),
        DeclareLaunchArgument("namespace", default_value=""),
        DeclareLaunchArgument("image", default_value="image"),
        DeclareLaunchArgument("depth", default_value="depth"),
        DeclareLaunchArgument("camera_info", default_value="camera_info"),
    ]
    node = Node(
        executable="gear-edge",
        arguments=["ros"],
        name="gear_edge",
        namespace=LaunchConfiguration("namespace"),
        parameters=[LaunchConfiguration("params_file")],
        remappings=[("image", LaunchConfiguration("image")), ("depth", LaunchConfiguration("depth")),
                    ("camera_info", LaunchConfiguration("camera_info"))],
        output="screen",
        emulate_tty=True,
    )
    return LaunchDescription([*args, node])
