"""Evaluation of embeddings as inputs for kinetic models."""

from .alignment import AlignmentResult, alignment, canonical_correlations, plot_alignment  # noqa: F401
