"""Sparse-training algorithms: one base class, a registry keyed by name."""
