"""Denoising loss of the upstream checkpoints (with their own heads) vs a fresh head.

A sanity anchor for ``geomfeat.pretrain``: if the heads, the noise normaliser and the encoders
are read the way they were trained, the pre-trained head predicts the noise far better than a
freshly initialised one on the same encoder (MSE of the normalised noise; predicting zero scores
about 1). Held-out conformers: frames of an MD trajectory, all atoms, σ = 0.2 Å.

    python benchmarks/denoising_anchor.py --traj ../shared/data/ala2/ala2_r1.xtc \
        --top ../shared/data/ala2/ala2.pdb --frames 64

Prints JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from geomfeat.download import fetch_weights
from geomfeat.encoders import read_state_dict
from geomfeat.pretrain import ConformerDataset, DenoisingModel, TrajectorySource, denoising_loss
from geomfeat.pretrain.model import load_state
from geomfeat.registry import get_model_card, list_models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traj", default="examples/ala2/ala2.xtc")
    parser.add_argument("--top", default="examples/ala2/ala2.pdb")
    parser.add_argument("--frames", type=int, default=64)
    parser.add_argument("--stride", type=int, default=100)
    parser.add_argument("--select", default="all")
    parser.add_argument("--sigma", type=float, default=0.2)
    parser.add_argument("--models", nargs="*", default=list_models())
    args = parser.parse_args()

    source = TrajectorySource(args.traj, args.top, select=args.select, stride=args.stride,
                              stop=args.frames * args.stride)
    data = ConformerDataset([source], "train", val_fraction=0, sigma=args.sigma)
    result = {"data": args.traj, "frames": len(data), "select": args.select,
              "atoms": source.reader.n_atoms, "sigma_A": args.sigma, "models": {}}
    for name in args.models:
        card = get_model_card(name)
        state = read_state_dict(fetch_weights(card, progress=False))
        model = DenoisingModel(card.architecture, card.hyperparameters)
        head, _ = load_state(model, state, card.file)
        start = time.perf_counter()
        pretrained = denoising_loss(model, data)
        torch.manual_seed(0)
        fresh = DenoisingModel(card.architecture, card.hyperparameters)
        fresh_state = fresh.state_dict()
        load_state(fresh, {k: v for k, v in state.items() if not k.startswith(fresh.head_name)},
                   card.file)  # same encoder and normaliser, the seeded fresh head kept
        assert torch.equal(fresh.head.output_network[0].vec1_proj.weight,
                           fresh_state[f"{fresh.head_name}.output_network.0.vec1_proj.weight"])
        result["models"][name] = {
            "head_in_file": head,
            "loss_pretrained_head": round(pretrained, 4),
            "loss_fresh_head": round(denoising_loss(fresh, data), 4),
            "normalizer_mean_A": [round(float(v), 4) for v in model.pos_normalizer.mean],
            "normalizer_std_A": [round(float(v), 4) for v in model.pos_normalizer.std],
            "seconds": round(time.perf_counter() - start, 1),
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
