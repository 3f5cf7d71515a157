"""ROS 2 adapter for GearSeg (extra ``[ros]``). Importing this package does not import rclpy;
``gear_edge.ros.node`` does."""
