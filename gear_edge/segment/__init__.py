"""Segment stage: class-agnostic region proposals (SAM2 automatic mask generation on engines, or the classical default)."""
