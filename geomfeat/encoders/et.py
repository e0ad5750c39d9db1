"""TorchMD-Net Equivariant Transformer (Thölke & De Fabritiis, ICLR 2022), in plain PyTorch.

Written for geomfeat from the published description of the architecture; parameter names are
those of the upstream checkpoints' ``representation_model.*`` tensors, so they load unchanged
into :class:`EquivariantTransformerEncoder`.

Each atom carries scalar features ``x (N, H)`` and vector features ``vec (N, 3, H)`` (zero at
the start). Every layer is a multi-head attention over the neighbour list in which

* the attention weight of edge ``j → i`` in head ``h`` is
  ``SiLU(Σ_c q_i · k_j · SiLU(W_k rbf(r_ij))) · cutoff(r_ij)``;
* the value ``v_j ⊙ SiLU(W_v rbf(r_ij))`` is split into three parts: a scalar message (scaled
  by the attention weight) and two gates, one for the neighbour's vectors ``vec_j`` and one for
  the unit edge vector ``d_ij = (pos_j - pos_i) / r_ij``;
* the aggregated scalars are projected into three parts ``o1, o2, o3`` that update
  ``x += <U1 vec, U2 vec> ⊙ o2 + o3`` and ``vec += U3 vec ⊙ o1 + Σ_j (vector messages)``.

The output is ``(LayerNorm(x), vec)``.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..neighbors import Edges
from .base import Encoder, GraphState
from .layers import ExpNormalSmearing, chunk_elements, edge_chunks, fused, unit_vectors

__all__ = ["EquivariantAttention", "EquivariantTransformerEncoder"]


@fused("q", "k", "v", "vec", "src", "trg", "envelope", "rbf", "direction", "agg_x", "agg_vec")
def _attention_messages(q: Tensor, k: Tensor, v: Tensor, vec: Tensor, src: Tensor, trg: Tensor,
                        envelope: Tensor, rbf: Tensor, direction: Tensor, w_kv: Tensor,
                        b_kv: Tensor, agg_x: Tensor, agg_vec: Tensor) -> None:
    """Messages of one chunk of edges, added into ``agg_x (N, H)`` and ``agg_vec (N, 3, H)``.

    ``q, k (N, heads, dim)``, ``v (N, heads, 3, dim)``; ``w_kv, b_kv``: the stacked
    ``dk_proj`` and ``dv_proj`` parameters (one matrix product for both).
    """
    e = src.numel()
    heads, dim = q.shape[1], q.shape[2]
    h = heads * dim
    dk, dv = torch.split(F.silu(F.linear(rbf, w_kv, b_kv)), (h, 3 * h), dim=1)
    # index_select, not q[trg]: advanced indexing is ~5x slower on the CPU
    qk = q.index_select(0, trg) * k.index_select(0, src)
    attn = F.silu((qk * dk.view(e, heads, dim)).sum(dim=-1)) * envelope.unsqueeze(-1)
    # scalar message, vec gate, direction gate
    value = v.index_select(0, src) * dv.view(e, heads, 3, dim)
    msg_x = (value[:, :, 0] * attn.unsqueeze(-1)).reshape(e, h)
    gate_vec = value[:, :, 1].reshape(e, 1, h)
    gate_dir = value[:, :, 2].reshape(e, 1, h)
    msg_vec = torch.addcmul(vec.index_select(0, src) * gate_vec, direction.unsqueeze(-1),
                            gate_dir)
    agg_x.index_add_(0, trg, msg_x.to(agg_x.dtype))
    agg_vec.index_add_(0, trg, msg_vec.to(agg_vec.dtype))


class EquivariantAttention(nn.Module):
    """One equivariant multi-head attention layer (returns increments of ``x`` and ``vec``).

    Parameters
    ----------
    hidden_channels : int
        Feature width ``H`` (a multiple of ``num_heads``).
    num_rbf : int
        Number of radial basis functions ``K``.
    num_heads : int
        Number of attention heads.
    """

    def __init__(self, hidden_channels: int, num_rbf: int, num_heads: int) -> None:
        super().__init__()
        if hidden_channels % num_heads:
            raise ValueError(
                f"hidden_channels ({hidden_channels}) must be a multiple of num_heads ({num_heads})"
            )
        self.hidden_channels = hidden_channels
        self.num_heads = num_heads
        self.head_dim = hidden_channels // num_heads
        h = hidden_channels
        self.layernorm = nn.LayerNorm(h)
        self.q_proj = nn.Linear(h, h)
        self.k_proj = nn.Linear(h, h)
        self.v_proj = nn.Linear(h, 3 * h)
        self.o_proj = nn.Linear(h, 3 * h)
        self.vec_proj = nn.Linear(h, 3 * h, bias=False)
        self.dk_proj = nn.Linear(num_rbf, h)
        self.dv_proj = nn.Linear(num_rbf, 3 * h)

    def forward(
        self,
        x: Tensor,
        vec: Tensor,
        source: Tensor,
        target: Tensor,
        envelope: Tensor,
        rbf: Tensor,
        direction: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """Increments ``(dx, dvec)`` of the features.

        Parameters
        ----------
        x : Tensor, shape (N, H)
            Scalar features.
        vec : Tensor, shape (N, 3, H)
            Vector features.
        source, target : Tensor, shape (E,), int64
            Neighbour ``j`` and centre ``i`` of every edge.
        envelope : Tensor, shape (E,)
            Cosine cutoff of the edge lengths.
        rbf : Tensor, shape (E, K)
            Radial basis of the edge lengths.
        direction : Tensor, shape (E, 3)
            Unit vectors ``(pos_j - pos_i) / r_ij`` (zero for self-loops).

        Returns
        -------
        dx : Tensor, shape (N, H)
        dvec : Tensor, shape (N, 3, H)
        """
        n, h = x.shape
        heads, dim = self.num_heads, self.head_dim

        x = self.layernorm(x)
        q = self.q_proj(x).view(n, heads, dim)
        k = self.k_proj(x).view(n, heads, dim)
        v = self.v_proj(x).view(n, heads, 3, dim)
        vec1, vec2, vec3 = self.vec_proj(vec).split(h, dim=-1)
        vec_dot = (vec1 * vec2).sum(dim=1)

        # accumulators in the coordinates' precision, also under autocast (16-bit messages)
        agg_x = envelope.new_zeros(n, h)
        agg_vec = envelope.new_zeros(n, 3, h)
        w_kv = torch.cat((self.dk_proj.weight, self.dv_proj.weight))
        b_kv = torch.cat((self.dk_proj.bias, self.dv_proj.bias))
        for chunk in edge_chunks(source.numel(), 3 * h, chunk_elements(x.device)):
            _attention_messages(q, k, v, vec, source[chunk], target[chunk], envelope[chunk],
                                rbf[chunk], direction[chunk], w_kv, b_kv, agg_x, agg_vec)

        o1, o2, o3 = self.o_proj(agg_x).split(h, dim=-1)
        dx = vec_dot * o2 + o3
        dvec = vec3 * o1.unsqueeze(1) + agg_vec
        return dx, dvec


class EquivariantTransformerEncoder(Encoder):
    """TorchMD-Net Equivariant Transformer representation model on a precomputed neighbour list.

    Configuration of the upstream checkpoints: expnorm radial basis with a cosine cutoff (lower
    cutoff 0), SiLU activations, distance influence on keys and values, no neighbour embedding,
    no vector normalisation.

    Parameters
    ----------
    hidden_channels : int
        Feature width ``H``.
    num_layers : int
        Number of attention layers.
    num_rbf : int
        Number of radial basis functions.
    cutoff : float
        Cutoff of the radial basis and of the neighbour list in Å.
    num_heads : int
        Number of attention heads (``H`` must be a multiple).
    max_z : int
        Rows of the atom-type embedding (atomic numbers must be ``< max_z``).
    """

    #: about 600 bytes per edge in float32 (edges are processed in chunks; measured on an H200)
    bytes_per_edge = 600

    def __init__(
        self,
        *,
        hidden_channels: int = 64,
        num_layers: int = 6,
        num_rbf: int = 64,
        cutoff: float = 7.5,
        num_heads: int = 8,
        max_z: int = 100,
    ) -> None:
        super().__init__()
        self.hidden_channels = int(hidden_channels)
        self.cutoff = float(cutoff)
        self.num_layers = int(num_layers)
        self.embedding = nn.Embedding(max_z, hidden_channels)
        self.distance_expansion = ExpNormalSmearing(cutoff, num_rbf)
        self.attention_layers = nn.ModuleList(
            EquivariantAttention(hidden_channels, num_rbf, num_heads) for _ in range(num_layers)
        )
        self.out_norm = nn.LayerNorm(hidden_channels)

    def initial_state(self, z: Tensor, edges: Edges) -> GraphState:
        """Atom-type embeddings, zero vectors and the unit vector of every edge.

        The output after layer ``i`` (:meth:`readout` of the state after it) is
        ``(out_norm(x_i), vec_i)``: the model's final LayerNorm applied to the scalar stream
        after that layer (per atom, so every layer's scalars are on the scale of the final
        output) and the vector stream as it is (the architecture has no vector normalisation,
        also not on its final output).
        """
        distance = edges.length
        x = self.embedding(z)
        vec = x.new_zeros(x.size(0), 3, x.size(1))
        return GraphState({"x": x, "vec": vec},
                          {"distance": distance, "direction": unit_vectors(edges.vec, distance)},
                          edges.index[0], edges.index[1])

    def interact(self, state: GraphState, stop: int | None = None) -> Iterator[GraphState]:
        stop = self._stop(state, stop)
        distance = state.edges["distance"]
        rbf = self.distance_expansion(distance)
        envelope = self.distance_expansion.cutoff_fn(distance)
        x, vec = state.nodes["x"], state.nodes["vec"]
        for i in range(state.layer, stop):
            dx, dvec = self.attention_layers[i](x, vec, state.source, state.target, envelope,
                                                rbf, state.edges["direction"])
            x = x + dx
            vec = vec + dvec
            yield GraphState({"x": x, "vec": vec}, state.edges, state.source, state.target, i + 1)

    def readout(self, state: GraphState) -> tuple[Tensor, Tensor]:
        return self.out_norm(state.nodes["x"]), state.nodes["vec"]

    @property
    def interaction_layers(self) -> nn.ModuleList:
        return self.attention_layers

    @property
    def readout_modules(self) -> list[nn.Module]:
        return [self.out_norm]
