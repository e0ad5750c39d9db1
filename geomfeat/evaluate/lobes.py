"""The VAMPNet lobe of a recipe: architecture and width for one input shape.

Shared by separate training (:mod:`geomfeat.evaluate.vampnet`) and batched training
(:mod:`geomfeat.evaluate.batched`), which must build the very same networks.
"""

from __future__ import annotations

import numpy as np
import torch

from ..deeptime import AttentionLobe, MixerLobe, MLPLobe, width_for_budget
from .recipe import VAMPNetRecipe

__all__ = ["make_lobe"]


def make_lobe(shape: tuple[int, ...], recipe: VAMPNetRecipe) -> tuple[torch.nn.Module, str,
                                                                         int]:
    """A lobe for frames of ``shape`` with about ``recipe.budget`` parameters.

    Returns ``(lobe, kind, width)``; ``kind`` is ``"mlp"`` for vectors and
    ``recipe.token_lobe`` for token sets ``(R, D)``.
    """
    n, depth = recipe.n_states, recipe.depth
    kind = "mlp" if len(shape) == 1 else recipe.token_lobe
    step = 1
    if kind == "mlp":
        d = int(np.prod(shape))
        def factory(w): return MLPLobe(d, n, width=w, depth=depth)
    elif kind == "mixer":
        r, d = shape
        def factory(w): return MixerLobe(r, d, n, width=w, depth=depth)
    elif kind == "attention":
        r, d = shape
        step = recipe.heads
        def factory(w): return AttentionLobe(d, n, n_tokens=r, width=w, depth=depth,
                                             heads=recipe.heads)
    else:
        raise ValueError(f"unknown token_lobe {kind!r}; choose mlp, mixer or attention")
    width = width_for_budget(factory, recipe.budget, step=step)
    return factory(width), kind, width
