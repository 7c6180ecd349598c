"""Explaining a speed-up: per-layer breakdown, cache model and simulation, calibration, roofline, flame graphs."""
