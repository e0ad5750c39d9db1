"""The VAMPNet recipe: every training setting, one frozen dataclass (no heavy imports).

The meaning of each field is documented in :mod:`geomfeat.evaluate.vampnet`; the same recipe
is used for every feature set of a comparison and stored in its report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

__all__ = ["VAMPNetRecipe"]


@dataclass(frozen=True)
class VAMPNetRecipe:
    """Every setting of VAMPNet training (the same for all feature sets)."""

    n_states: int = 5
    budget: int = 20000
    depth: int = 2
    token_lobe: str = "mixer"
    heads: int = 4
    batch_size: int = 256
    lr: float = 1e-3
    steps_per_epoch: int = 50
    max_epochs: int = 30
    patience: int = 8
    lr_patience: int = 4
    lr_factor: float = 0.5
    min_lr: float = 1e-5
    restarts: int = 2
    min_improvement: float = 1e-4
    epsilon: float = 1e-6
    score_mode: str = "regularize"

    def as_dict(self) -> dict:
        return asdict(self)
