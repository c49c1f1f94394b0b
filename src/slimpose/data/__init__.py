"""Data sets, transforms and the synthetic generator."""
