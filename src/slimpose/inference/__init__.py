"""Inference application: detectors, the pose estimator, drawing."""
