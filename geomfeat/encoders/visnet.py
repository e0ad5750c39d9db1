"""ViSNet (Wang et al., Nat. Commun. 2024), built on PyTorch Geometric's ``ViSNetBlock``.

The checkpoint's ``representation_model.*`` tensors load into :class:`ViSNetEncoder` unchanged:
it *is* a ``ViSNetBlock`` (same modules and parameters). Two things differ from PyG's forward:

* edges come from :mod:`geomfeat.neighbors` (no neighbour cap, no torch-cluster) instead of
  ``torch_geometric.nn.radius_graph``;
* the message passing of every ``ViS_MP`` layer runs over the edges in chunks
  (:func:`vis_mp_layer`): the same sums as PyG's ``propagate``/``edge_updater``, but per-edge
  temporaries stay a few MB on the CPU instead of several kB per edge, which is both faster
  (no fresh pages for every temporary) and lets far larger batches fit in memory. The messages
  of a chunk are one function (:func:`_vis_mp_messages`, :func:`_vis_mp_messages_edges`),
  compiled into fused kernels on CUDA (see :func:`geomfeat.encoders.layers.fused`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch_geometric.nn.models.visnet import VecLayerNorm, ViS_MP, ViSNetBlock

from ..neighbors import Edges
from .base import Encoder, GraphState
from .layers import chunk_elements, edge_chunks, fused, unit_vectors

__all__ = ["MaxMinVecNorm", "ViSNetEncoder", "vis_mp_layer"]


class MaxMinVecNorm(VecLayerNorm):
    """PyG's ``VecLayerNorm`` (max-min norm of vector features), with the same parameters.

    Two changes, neither of which changes a result beyond rounding:

    * vector lengths are ``sqrt(Σ_xyz v²)``: ``torch.linalg.vector_norm`` over the middle (xyz)
      axis of ``(N, 3, H)`` takes a strided path on the CPU that is ~50x slower (30 ms for
      256 alanine-dipeptide frames, a quarter of the whole encoder);
    * no early return when every vector of the batch is zero (a device-to-host sync on a
      GPU): the formula gives zeros then too. The squared length is clamped at ``eps²`` before
      the square root, as PyG clamps the length at ``eps``, so gradients stay finite at zero.
      16-bit vectors are normalised in float32 (``eps²`` is zero in float16, and squares of
      lengths over 256 overflow it).
    """

    @classmethod
    def like(cls, norm: VecLayerNorm) -> MaxMinVecNorm:
        """A new instance with ``norm``'s settings and weights."""
        trainable = isinstance(norm.weight, nn.Parameter)
        new = cls(norm.hidden_channels, trainable=trainable, norm_type=norm.norm_type)
        with torch.no_grad():
            new.weight.copy_(norm.weight)
        return new

    def max_min_norm(self, vec: Tensor) -> Tensor:
        """Vectors ``(N, 3, H)`` rescaled per atom so their lengths span [0, 1] over ``H``."""
        if vec.dtype in (torch.float16, torch.bfloat16):
            return self.max_min_norm(vec.float()).to(vec.dtype)
        length = vec.square().sum(dim=1, keepdim=True).clamp(min=self.eps**2).sqrt()
        direction = vec / length
        low = length.amin(dim=-1, keepdim=True)
        span = length.amax(dim=-1, keepdim=True) - low
        span = torch.where(span == 0, torch.ones_like(span), span)
        return ((length - low) / span).relu() * direction


def _vis_mp_core(q: Tensor, k: Tensor, v: Tensor, vec: Tensor, src: Tensor, trg: Tensor,
                 f_ij: Tensor, d_ij: Tensor, envelope: Tensor, w_kv: Tensor, b_kv: Tensor,
                 w_s: Tensor, b_s: Tensor, agg_x: Tensor, agg_vec: Tensor) -> None:
    """Scalar and vector messages of one chunk of edges, added into ``agg_x`` and ``agg_vec``."""
    e = src.numel()
    heads, dim = q.shape[1], q.shape[2]
    h = heads * dim
    dk, dv = torch.split(F.silu(F.linear(f_ij, w_kv, b_kv)), h, dim=1)
    # index_select, not q[trg]: advanced indexing is ~5x slower on the CPU
    qk = q.index_select(0, trg) * k.index_select(0, src)
    attn = F.silu((qk * dk.view(e, heads, dim)).sum(dim=-1))
    attn = attn * envelope.unsqueeze(1)
    msg_x = (v.index_select(0, src) * dv.view(e, heads, dim) * attn.unsqueeze(2)).view(e, h)
    s1, s2 = torch.split(F.silu(F.linear(msg_x, w_s, b_s)), h, dim=1)
    msg_vec = vec.index_select(0, src) * s1.unsqueeze(1) + s2.unsqueeze(1) * d_ij.unsqueeze(2)
    agg_x.index_add_(0, trg, msg_x.to(agg_x.dtype))
    agg_vec.index_add_(0, trg, msg_vec.to(agg_vec.dtype))


@fused("q", "k", "v", "vec", "src", "trg", "f_ij", "d_ij", "envelope", "agg_x", "agg_vec")
def _vis_mp_messages(q: Tensor, k: Tensor, v: Tensor, vec: Tensor, src: Tensor, trg: Tensor,
                     f_ij: Tensor, d_ij: Tensor, envelope: Tensor, w_kv: Tensor, b_kv: Tensor,
                     w_s: Tensor, b_s: Tensor, agg_x: Tensor, agg_vec: Tensor) -> None:
    """Messages of one chunk of edges of the last layer (no edge update)."""
    _vis_mp_core(q, k, v, vec, src, trg, f_ij, d_ij, envelope, w_kv, b_kv, w_s, b_s, agg_x,
                 agg_vec)


@fused("q", "k", "v", "vec", "w_target", "w_source", "src", "trg", "f_ij", "d_ij", "envelope",
       "agg_x", "agg_vec")
def _vis_mp_messages_edges(q: Tensor, k: Tensor, v: Tensor, vec: Tensor, w_target: Tensor,
                           w_source: Tensor, src: Tensor, trg: Tensor, f_ij: Tensor,
                           d_ij: Tensor, envelope: Tensor, w_kv: Tensor, b_kv: Tensor,
                           w_s: Tensor, b_s: Tensor, w_f: Tensor, b_f: Tensor, agg_x: Tensor,
                           agg_vec: Tensor) -> Tensor:
    """Messages of one chunk of edges, added into the accumulators; returns the edge update."""
    _vis_mp_core(q, k, v, vec, src, trg, f_ij, d_ij, envelope, w_kv, b_kv, w_s, b_s, agg_x,
                 agg_vec)
    # <w_t - (w_t.d) d, w_s - (w_s.d) d> = w_t.w_s - (w_t.d)(w_s.d) for |d| = 1 (and d = 0)
    w_t, w_s = w_target.index_select(0, trg), w_source.index_select(0, src)
    d = d_ij.unsqueeze(2)
    w_dot = (w_t * w_s).sum(dim=1) - (w_t * d).sum(dim=1) * (w_s * d).sum(dim=1)
    return F.silu(F.linear(f_ij, w_f, b_f)) * w_dot


def vis_mp_layer(layer: ViS_MP, x: Tensor, vec: Tensor, source: Tensor, target: Tensor,
                 distance: Tensor, edge_attr: Tensor, direction: Tensor
                 ) -> tuple[Tensor, Tensor, Tensor | None]:
    """One ViSNet message-passing layer, computed over chunks of edges.

    Equal (up to summation order) to ``layer(x, vec, edge_index, distance, edge_attr,
    direction)`` of PyG's ``ViS_MP`` with ``lmax = 1``.

    Parameters
    ----------
    layer : ViS_MP
        The layer whose parameters are used.
    x : Tensor, shape (N, H)
        Scalar features.
    vec : Tensor, shape (N, 3, H)
        Vector features.
    source, target : Tensor, shape (E,)
        Neighbour ``j`` and centre ``i`` of every edge.
    distance : Tensor, shape (E,)
        Edge lengths in Å.
    edge_attr : Tensor, shape (E, H)
        Edge features ``f_ij``.
    direction : Tensor, shape (E, 3)
        Unit edge vectors (zero for self-loops).

    Returns
    -------
    dx : Tensor, shape (N, H)
    dvec : Tensor, shape (N, 3, H)
    dedge : Tensor, shape (E, H), or None for the last layer
    """
    n, h = x.shape
    heads, dim = layer.num_heads, layer.head_dim
    x = layer.layernorm(x)
    vec = layer.vec_layernorm(vec)
    q = layer.q_proj(x).view(n, heads, dim)
    k = layer.k_proj(x).view(n, heads, dim)
    v = layer.v_proj(x).view(n, heads, dim)
    vec1, vec2, vec3 = torch.split(layer.vec_proj(vec), h, dim=-1)
    vec_dot = (vec1 * vec2).sum(dim=1)
    if not layer.last_layer:
        w_target, w_source = layer.w_trg_proj(vec), layer.w_src_proj(vec)
        dedge = edge_attr.new_empty(edge_attr.shape)

    # accumulators in the coordinates' precision, also under autocast (16-bit messages)
    agg_x = distance.new_zeros(n, h)
    agg_vec = distance.new_zeros(vec.shape)
    envelope = layer.cutoff(distance)
    # dk and dv projections in one matrix product
    w_kv = torch.cat((layer.dk_proj.weight, layer.dv_proj.weight))
    b_kv = torch.cat((layer.dk_proj.bias, layer.dv_proj.bias))
    s_proj = layer.s_proj
    for chunk in edge_chunks(source.numel(), 3 * h, chunk_elements(x.device)):
        if layer.last_layer:
            _vis_mp_messages(q, k, v, vec, source[chunk], target[chunk], edge_attr[chunk],
                             direction[chunk], envelope[chunk], w_kv, b_kv, s_proj.weight,
                             s_proj.bias, agg_x, agg_vec)
        else:
            f_proj = layer.f_proj
            dedge[chunk] = _vis_mp_messages_edges(
                q, k, v, vec, w_target, w_source, source[chunk], target[chunk],
                edge_attr[chunk], direction[chunk], envelope[chunk], w_kv, b_kv, s_proj.weight,
                s_proj.bias, f_proj.weight, f_proj.bias, agg_x, agg_vec)

    o1, o2, o3 = torch.split(layer.o_proj(agg_x), h, dim=1)
    dx = vec_dot * o2 + o3
    dvec = vec3 * o1.unsqueeze(1) + agg_vec
    return dx, dvec, (None if layer.last_layer else dedge)


class ViSNetEncoder(ViSNetBlock, Encoder):
    """ViSNet representation block taking a precomputed neighbour list.

    Parameters
    ----------
    hidden_channels, num_layers, num_rbf, num_heads, lmax, vecnorm_type, trainable_vecnorm, max_z
        As in :class:`torch_geometric.nn.models.visnet.ViSNetBlock`.
    cutoff : float
        Cutoff of the radial basis and of the neighbour list in Å.
    """

    #: about 1100 bytes per edge in float32 (edge-chunked layers; peak RSS on the CPU for 8
    #: T4L frames, 691 600 edges). PyG's own forward needed about 6200 (measured on an H200).
    bytes_per_edge = 1200

    def __init__(
        self,
        *,
        hidden_channels: int = 64,
        num_layers: int = 6,
        num_rbf: int = 64,
        cutoff: float = 7.5,
        num_heads: int = 8,
        lmax: int = 1,
        vecnorm_type: str | None = "max_min",
        trainable_vecnorm: bool = True,
        max_z: int = 100,
    ) -> None:
        if lmax != 1:
            raise ValueError(f"geomfeat's ViSNet supports lmax=1 (the checkpoints'), got {lmax}")
        super().__init__(
            lmax=lmax,
            vecnorm_type=vecnorm_type,
            trainable_vecnorm=trainable_vecnorm,
            num_heads=num_heads,
            num_layers=num_layers,
            hidden_channels=hidden_channels,
            num_rbf=num_rbf,
            cutoff=cutoff,
            max_z=max_z,
        )
        for layer in self.vis_mp_layers:
            layer.vec_layernorm = MaxMinVecNorm.like(layer.vec_layernorm)
        self.vec_out_norm = MaxMinVecNorm.like(self.vec_out_norm)

    # ViSNetBlock's own forward comes first in the method order: use the staged one
    forward = Encoder.forward

    def initial_state(self, z: Tensor, edges: Edges) -> GraphState:
        """Atom embeddings (with the neighbour embedding), zero vectors and edge features.

        The output after layer ``i`` (:meth:`readout` of the state after it) is
        ``(out_norm(x_i), vec_out_norm(vec_i))``: the model's final output normalisation (a
        LayerNorm of the scalars, ViSNet's max-min norm of the vectors, both per atom) applied
        to the residual streams after that layer, so that every layer's features are on the
        scale of the final output.
        """
        edge_index, distance = edges.index, edges.length
        direction = self.sphere(unit_vectors(edges.vec, distance))
        x = self.embedding(z)
        rbf = self.distance_expansion(distance)
        x = self.neighbor_embedding(z, x, edge_index, distance, rbf)
        vec = x.new_zeros(x.size(0), (self.lmax + 1) ** 2 - 1, x.size(1))
        edge_attr = self.edge_embedding(edge_index, rbf, x)
        return GraphState({"x": x, "vec": vec},
                          {"distance": distance, "direction": direction, "edge_attr": edge_attr},
                          edge_index[0], edge_index[1])

    def interact(self, state: GraphState, stop: int | None = None) -> Iterator[GraphState]:
        stop = self._stop(state, stop)
        x, vec = state.nodes["x"], state.nodes["vec"]
        distance, direction = state.edges["distance"], state.edges["direction"]
        edge_attr = state.edges.get("edge_attr")
        for i in range(state.layer, stop):
            dx, dvec, dedge = vis_mp_layer(self.vis_mp_layers[i], x, vec, state.source,
                                           state.target, distance, edge_attr, direction)
            x, vec = x + dx, vec + dvec
            edges = {"distance": distance, "direction": direction}
            if dedge is not None:  # the last layer neither updates nor reads edge features
                edge_attr = edge_attr + dedge
                edges["edge_attr"] = edge_attr
            yield GraphState({"x": x, "vec": vec}, edges, state.source, state.target, i + 1)

    def readout(self, state: GraphState) -> tuple[Tensor, Tensor]:
        return self.out_norm(state.nodes["x"]), self.vec_out_norm(state.nodes["vec"])

    @property
    def interaction_layers(self) -> nn.ModuleList:
        return self.vis_mp_layers

    @property
    def readout_modules(self) -> list[nn.Module]:
        return [self.out_norm, self.vec_out_norm]
