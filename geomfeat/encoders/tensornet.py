"""TensorNet (Simeon & De Fabritiis, NeurIPS 2023), in plain PyTorch.

Written for geomfeat from the published description of the architecture; parameter names are
those of the upstream checkpoints' ``representation_model.*`` tensors, so they load unchanged
into :class:`TensorNetEncoder`.

Every atom carries ``H`` Cartesian rank-2 tensors ``X`` (3 × 3 each), decomposed into an
isotropic part ``I = tr(X)/3 · 1``, an antisymmetric part ``A = (X - Xᵀ)/2`` and a symmetric
traceless part ``S = (X + Xᵀ)/2 - I``. Linear maps mix the ``H`` channels without mixing
Cartesian components, so they act on ``I``, ``A`` and ``S`` separately and keep equivariance.

Implementation notes
--------------------
Full tensors are stored channels-last, shape ``(N, 3, 3, H)``, so that ``nn.Linear`` acts on
the channels directly. The decomposition is kept as one array of 10 components per channel,
shape ``(N, 10, H)``: the isotropic scalar ``iso`` (``I = iso · 1``), the axial vector ``a`` of
``A`` (``A w = a × w``) and the entries ``xx, yy, zz, xy, xz, yz`` of ``S``. Switching between
the two layouts is one small matrix product (:func:`decompose`, :func:`compose`), and along
edges only these 10 numbers per channel travel (instead of 27 for three full tensors), in one
gather and one scatter per layer (edges are processed in chunks of a few MB, see
:func:`geomfeat.encoders.layers.edge_chunks`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..neighbors import Edges
from .base import Encoder, GraphState
from .layers import (
    CosineCutoff,
    ExpNormalSmearing,
    chunk_elements,
    edge_chunks,
    fused,
    unit_vectors,
)

__all__ = ["TensorEmbedding", "TensorInteraction", "TensorNetEncoder", "compose", "decompose"]

#: Slices of the 10 components: isotropic, axial vector of A, entries of S.
ISO, AXIAL, SYM = slice(0, 1), slice(1, 4), slice(4, 10)
#: Part (0 = I, 1 = A, 2 = S) of each of the 10 components.
PART = (0, 1, 1, 1, 2, 2, 2, 2, 2, 2)
#: Squared Frobenius norm of the full tensor = Σ_c NORM_WEIGHT[c] · component_c².
NORM_WEIGHT = (3.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 2.0, 2.0, 2.0)

# compose: full tensor entry (row-major, 9) <- 10 components
# (iso, ax, ay, az, sxx, syy, szz, sxy, sxz, syz)
_COMPOSE = (
    (1, 0, 0, 0, 1, 0, 0, 0, 0, 0),  # X00 = iso + sxx
    (0, 0, 0, -1, 0, 0, 0, 1, 0, 0),  # X01 = sxy - az
    (0, 0, 1, 0, 0, 0, 0, 0, 1, 0),  # X02 = sxz + ay
    (0, 0, 0, 1, 0, 0, 0, 1, 0, 0),  # X10 = sxy + az
    (1, 0, 0, 0, 0, 1, 0, 0, 0, 0),  # X11 = iso + syy
    (0, -1, 0, 0, 0, 0, 0, 0, 0, 1),  # X12 = syz - ax
    (0, 0, -1, 0, 0, 0, 0, 0, 1, 0),  # X20 = sxz - ay
    (0, 1, 0, 0, 0, 0, 0, 0, 0, 1),  # X21 = syz + ax
    (1, 0, 0, 0, 0, 0, 1, 0, 0, 0),  # X22 = iso + szz
)
# decompose: 10 components <- full tensor entry (row-major, 9); traceless S
_T, _H = 1.0 / 3.0, 0.5
_DECOMPOSE = (
    (_T, 0, 0, 0, _T, 0, 0, 0, _T),  # iso = tr / 3
    (0, 0, 0, 0, 0, -_H, 0, _H, 0),  # ax = (X21 - X12) / 2
    (0, 0, _H, 0, 0, 0, -_H, 0, 0),  # ay = (X02 - X20) / 2
    (0, -_H, 0, _H, 0, 0, 0, 0, 0),  # az = (X10 - X01) / 2
    (2 * _T, 0, 0, 0, -_T, 0, 0, 0, -_T),  # sxx = X00 - iso
    (-_T, 0, 0, 0, 2 * _T, 0, 0, 0, -_T),  # syy = X11 - iso
    (-_T, 0, 0, 0, -_T, 0, 0, 0, 2 * _T),  # szz = X22 - iso
    (0, _H, 0, _H, 0, 0, 0, 0, 0),  # sxy = (X01 + X10) / 2
    (0, 0, _H, 0, 0, 0, _H, 0, 0),  # sxz = (X02 + X20) / 2
    (0, 0, 0, 0, 0, _H, 0, _H, 0),  # syz = (X12 + X21) / 2
)
# Row and column (in u uᵀ) of the six stored entries of a symmetric tensor.
_SYM_ROWS = (0, 1, 2, 0, 0, 1)
_SYM_COLS = (0, 1, 2, 1, 2, 2)


def _constant(values: tuple, like: Tensor) -> Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device)


def decompose(tensor: Tensor) -> Tensor:
    """The 10 independent components of the ``I``, ``A``, ``S`` parts of full tensors.

    Parameters
    ----------
    tensor : Tensor, shape (N, 3, 3, H)
        Channels-last 3 × 3 tensors.

    Returns
    -------
    Tensor, shape (N, 10, H)
        ``iso = tr(X)/3``; axial vector ``(A₂₁, A₀₂, A₁₀)`` of ``A = (X - Xᵀ)/2``; entries
        ``xx, yy, zz, xy, xz, yz`` of ``S = (X + Xᵀ)/2 - iso · 1``.
    """
    n, h = tensor.shape[0], tensor.shape[-1]
    return torch.matmul(_constant(_DECOMPOSE, tensor), tensor.reshape(n, 9, h))


def compose(parts: Tensor) -> Tensor:
    """Full tensors ``iso · 1 + skew(a) + S`` from their components (inverse of :func:`decompose`).

    Parameters
    ----------
    parts : Tensor, shape (N, 10, H)

    Returns
    -------
    Tensor, shape (N, 3, 3, H)
    """
    n, h = parts.shape[0], parts.shape[-1]
    return torch.matmul(_constant(_COMPOSE, parts), parts).view(n, 3, 3, h)


def squared_norm(parts: Tensor) -> Tensor:
    """Squared Frobenius norm of the tensors whose components are ``parts`` (N, 10, H) → (N, H).

    The three parts are mutually orthogonal, so the norm is ``3 iso² + 2 |a|² + |S|²``.
    """
    return torch.einsum("nch,c->nh", parts.square(), _constant(NORM_WEIGHT, parts))


def matmul3(a: Tensor, b: Tensor) -> Tensor:
    """Channel-wise 3 × 3 matrix product of channels-last tensors (N, 3, 3, H)."""
    return (a.unsqueeze(3) * b.unsqueeze(1)).sum(dim=2)


def _per_part(factor: Tensor) -> Tensor:
    """Spread per-part factors (M, 3, H) over the 10 components → (M, 10, H)."""
    return factor.index_select(1, torch.tensor(PART, device=factor.device))


def _mix_parts(parts: Tensor, linears: list[nn.Module]) -> Tensor:
    """Apply one channel-mixing linear map to each of I, A, S of ``parts`` (N, 10, H)."""
    return torch.cat(
        (linears[0](parts[:, ISO]), linears[1](parts[:, AXIAL]), linears[2](parts[:, SYM])), dim=1
    )


@fused("atom", "src", "trg", "envelope", "rbf", "geometry", "parts")
def _embedding_messages(atom: Tensor, src: Tensor, trg: Tensor, envelope: Tensor, rbf: Tensor,
                        geometry: Tensor, w_pair: Tensor, b_pair: Tensor, w_rbf: Tensor,
                        b_rbf: Tensor, part: Tensor, parts: Tensor) -> None:
    """Initial-tensor messages of one chunk of edges, added into ``parts (N, 10, H)``."""
    h = atom.shape[1]
    ends = (atom.index_select(0, trg), atom.index_select(0, src))  # not atom[trg]: ~5x slower
    pair = F.linear(torch.cat(ends, dim=-1), w_pair, b_pair)
    pair = pair * envelope.unsqueeze(-1)  # (e, H)
    factor = F.linear(rbf, w_rbf, b_rbf).view(-1, 3, h) * pair.unsqueeze(1)
    message = geometry.unsqueeze(-1) * factor.index_select(1, part)
    parts.index_add_(0, trg, message.to(parts.dtype))


@fused("parts", "src", "trg", "envelope", "rbf", "gathered")
def _interaction_messages(parts: Tensor, src: Tensor, trg: Tensor, envelope: Tensor, rbf: Tensor,
                          w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, w3: Tensor, b3: Tensor,
                          part: Tensor, gathered: Tensor) -> None:
    """Neighbour messages of one chunk of edges, added into ``gathered (N, 10, H)``.

    The edge factors are ``cutoff · SiLU(W3 SiLU(W2 SiLU(W1 rbf)))`` with ``W3``'s rows in
    (part, channel) order, shape (e, 3, H), spread over the 10 components by ``part``.
    """
    h = parts.shape[2]
    factor = F.silu(F.linear(F.silu(F.linear(F.silu(F.linear(rbf, w1, b1)), w2, b2)), w3, b3))
    factor = (factor * envelope.unsqueeze(-1)).view(-1, 3, h)
    message = parts.index_select(0, src) * factor.index_select(1, part)
    gathered.index_add_(0, trg, message.to(gathered.dtype))


class TensorEmbedding(nn.Module):
    """Initial per-atom tensors from the neighbourhood.

    For centre ``i`` and neighbour ``j`` at distance ``r`` with unit vector
    ``u = (pos_j - pos_i) / r`` (zero for the self-loop), the pair weight is
    ``w_ij = cutoff(r) · emb2([emb(z_i), emb(z_j)])`` and

    ``I_i = Σ_j W₁ rbf(r) ⊙ w_ij · 1``, ``A_i = Σ_j W₂ rbf(r) ⊙ w_ij · skew(u)``,
    ``S_i = Σ_j W₃ rbf(r) ⊙ w_ij · (u uᵀ - 1/3)``.

    Each part is then mixed over channels by a linear map and rescaled channel- and part-wise by
    an MLP of ``LayerNorm(‖I + A + S‖²)``.

    Parameters
    ----------
    hidden_channels : int
        Number of tensor channels ``H``.
    num_rbf : int
        Number of radial basis functions ``K``.
    cutoff : float
        Cutoff in Å.
    max_z : int
        Rows of the atom-type embedding.
    """

    def __init__(self, hidden_channels: int, num_rbf: int, cutoff: float, max_z: int) -> None:
        super().__init__()
        h = hidden_channels
        self.hidden_channels = h
        self.distance_proj1 = nn.Linear(num_rbf, h)
        self.distance_proj2 = nn.Linear(num_rbf, h)
        self.distance_proj3 = nn.Linear(num_rbf, h)
        self.cutoff = CosineCutoff(cutoff)
        self.emb = nn.Embedding(max_z, h)
        self.emb2 = nn.Linear(2 * h, h)
        self.linears_tensor = nn.ModuleList(nn.Linear(h, h, bias=False) for _ in range(3))
        self.linears_scalar = nn.ModuleList([nn.Linear(h, 2 * h), nn.Linear(2 * h, 3 * h)])
        self.init_norm = nn.LayerNorm(h)

    def forward(
        self,
        z: Tensor,
        source: Tensor,
        target: Tensor,
        distance: Tensor,
        unit: Tensor,
        rbf: Tensor,
    ) -> Tensor:
        """Components of the initial tensors, shape (N, 10, H) (see :func:`decompose`).

        Parameters
        ----------
        z : Tensor, shape (N,), int64
            Atomic numbers.
        source, target : Tensor, shape (E,), int64
            Neighbour ``j`` and centre ``i`` of every edge.
        distance : Tensor, shape (E,)
            Edge lengths in Å.
        unit : Tensor, shape (E, 3)
            Unit vectors from centre to neighbour, ``(pos_j - pos_i) / r`` (zero for self-loops).
        rbf : Tensor, shape (E, K)
            Radial basis of the edge lengths.
        """
        n, h = z.numel(), self.hidden_channels
        atom = self.emb(z)
        weight = torch.cat(
            (self.distance_proj1.weight, self.distance_proj2.weight, self.distance_proj3.weight)
        )
        bias = torch.cat(
            (self.distance_proj1.bias, self.distance_proj2.bias, self.distance_proj3.bias)
        )
        outer = unit[:, _SYM_ROWS] * unit[:, _SYM_COLS]  # entries of u uᵀ
        trace = unit.square().sum(dim=-1, keepdim=True) / 3.0
        geometry = torch.cat(  # (E, 10): components of 1, skew(u), u uᵀ - |u|²/3
            (torch.ones_like(trace), unit, outer[:, :3] - trace, outer[:, 3:]), dim=-1
        )
        envelope = self.cutoff(distance)

        parts = distance.new_zeros(n, 10, h)  # coordinates' precision, also under autocast
        part = torch.tensor(PART, device=atom.device)
        for chunk in edge_chunks(source.numel(), 10 * h, chunk_elements(atom.device)):
            _embedding_messages(atom, source[chunk], target[chunk], envelope[chunk], rbf[chunk],
                                geometry[chunk], self.emb2.weight, self.emb2.bias, weight, bias,
                                part, parts)

        scale = self.init_norm(squared_norm(parts))
        for linear in self.linears_scalar:
            scale = F.silu(linear(scale))
        scale = scale.view(n, h, 3).transpose(1, 2)  # (N, 3, H)
        return _mix_parts(parts, self.linears_tensor) * _per_part(scale)


class TensorInteraction(nn.Module):
    """One TensorNet interaction layer (O(3)-equivariant variant).

    With ``X̂ = X / (‖X‖² + 1)`` and ``Y = L₀ I(X̂) + L₁ A(X̂) + L₂ S(X̂)``, the neighbourhood
    message is ``M_i = Σ_j f₀(r) I(Y_j) + f₁(r) A(Y_j) + f₂(r) S(Y_j)`` with
    ``f = cutoff(r) · MLP(rbf(r))``. Then ``P = M Y + Y M``, its parts are divided by
    ``‖P‖² + 1`` and mixed by ``L₃, L₄, L₅`` into ``dX``, and ``X ← X̂ + dX + dX²``.

    Parameters
    ----------
    num_rbf : int
        Number of radial basis functions ``K``.
    hidden_channels : int
        Number of tensor channels ``H``.
    cutoff : float
        Cutoff in Å.
    """

    def __init__(self, num_rbf: int, hidden_channels: int, cutoff: float) -> None:
        super().__init__()
        h = hidden_channels
        self.hidden_channels = h
        self.linears_scalar = nn.ModuleList(
            [nn.Linear(num_rbf, h), nn.Linear(h, 2 * h), nn.Linear(2 * h, 3 * h)]
        )
        self.linears_tensor = nn.ModuleList(nn.Linear(h, h, bias=False) for _ in range(6))
        self.cutoff = CosineCutoff(cutoff)

    def forward(
        self, x: Tensor, source: Tensor, target: Tensor, distance: Tensor, rbf: Tensor
    ) -> Tensor:
        """Updated tensors.

        Parameters
        ----------
        x : Tensor, shape (N, 3, 3, H)
            Per-atom tensors.
        source, target : Tensor, shape (E,), int64
            Neighbour ``j`` and centre ``i`` of every edge.
        distance : Tensor, shape (E,)
            Edge lengths in Å.
        rbf : Tensor, shape (E, K)
            Radial basis of the edge lengths.

        Returns
        -------
        Tensor, shape (N, 3, 3, H)
        """
        n, h = x.size(0), self.hidden_channels
        # The last scalar layer's outputs are ordered (channel, part); reorder its rows to
        # (part, channel) so that the per-part edge factors come out contiguous, (e, 3, H).
        last = self.linears_scalar[-1]
        weight = last.weight.view(h, 3, -1).transpose(0, 1).reshape(3 * h, -1)
        bias = last.bias.view(h, 3).t().reshape(-1)
        envelope = self.cutoff(distance)

        x = x / (x.square().sum(dim=(1, 2)) + 1.0)[:, None, None, :]
        parts = _mix_parts(decompose(x), self.linears_tensor[:3])
        y = compose(parts)

        gathered = distance.new_zeros(n, 10, h)  # coordinates' precision, also under autocast
        first, second = self.linears_scalar[0], self.linears_scalar[1]
        part = torch.tensor(PART, device=parts.device)
        for chunk in edge_chunks(source.numel(), 10 * h, chunk_elements(parts.device)):
            _interaction_messages(parts, source[chunk], target[chunk], envelope[chunk],
                                  rbf[chunk], first.weight, first.bias, second.weight,
                                  second.bias, weight, bias, part, gathered)
        msg = compose(gathered)

        parts = decompose(matmul3(msg, y) + matmul3(y, msg))
        parts = parts / (squared_norm(parts) + 1.0).unsqueeze(1)
        dx = compose(_mix_parts(parts, self.linears_tensor[3:]))
        return x + dx + matmul3(dx, dx)


class TensorNetEncoder(Encoder):
    """TensorNet representation model on a precomputed neighbour list.

    Configuration of the upstream checkpoints: expnorm radial basis with a cosine cutoff (lower
    cutoff 0), SiLU activations, O(3) equivariance group.

    Outputs per atom, from the final tensors ``X = I + A + S``:

    * ``x = SiLU(W · LayerNorm([‖I‖², ‖A‖², ‖S‖²]))`` with shape (N, H) (squared Frobenius
      norms, concatenated channel blocks);
    * ``vec`` = the axial vector of ``A`` (``A w = vec × w``), shape (N, 3, H).

    Parameters
    ----------
    hidden_channels : int
        Number of tensor channels ``H``.
    num_layers : int
        Number of interaction layers.
    num_rbf : int
        Number of radial basis functions.
    cutoff : float
        Cutoff of the radial basis and of the neighbour list in Å.
    max_z : int
        Rows of the atom-type embedding (atomic numbers must be ``< max_z``; 128 upstream).
    equivariance_invariance_group : str
        Only ``"O(3)"`` (the checkpoints' setting) is implemented.
    """

    #: about 1400 bytes per edge in float32 (edges are processed in chunks; measured on an H200)
    bytes_per_edge = 1400

    def __init__(
        self,
        *,
        hidden_channels: int = 64,
        num_layers: int = 3,
        num_rbf: int = 32,
        cutoff: float = 5.0,
        max_z: int = 128,
        equivariance_invariance_group: str = "O(3)",
    ) -> None:
        super().__init__()
        if equivariance_invariance_group != "O(3)":
            raise ValueError(
                f"equivariance_invariance_group {equivariance_invariance_group!r} is not "
                "supported (only 'O(3)')"
            )
        self.hidden_channels = int(hidden_channels)
        self.cutoff = float(cutoff)
        self.num_layers = int(num_layers)
        self.distance_expansion = ExpNormalSmearing(cutoff, num_rbf)
        self.tensor_embedding = TensorEmbedding(hidden_channels, num_rbf, cutoff, max_z)
        self.layers = nn.ModuleList(
            TensorInteraction(num_rbf, hidden_channels, cutoff) for _ in range(num_layers)
        )
        self.linear = nn.Linear(3 * hidden_channels, hidden_channels)
        self.out_norm = nn.LayerNorm(3 * hidden_channels)

    def initial_state(self, z: Tensor, edges: Edges) -> GraphState:
        """Per-atom tensors ``X (M, 3, 3, H)`` of the tensor embedding.

        The output after layer ``i`` is :meth:`readout` of the tensors after that layer: the
        model's scalar head (LayerNorm of the I/A/S norms, linear map, SiLU) and the axial
        vectors, exactly as for the final output.
        """
        source, target = edges.index[0], edges.index[1]
        distance = edges.length
        rbf = self.distance_expansion(distance)
        unit = unit_vectors(edges.vec, distance)  # from centre i to neighbour j
        x = compose(self.tensor_embedding(z, source, target, distance, unit, rbf))
        return GraphState({"X": x}, {"distance": distance}, source, target)

    def interact(self, state: GraphState, stop: int | None = None) -> Iterator[GraphState]:
        stop = self._stop(state, stop)
        distance = state.edges["distance"]
        rbf = self.distance_expansion(distance)
        x = state.nodes["X"]
        for i in range(state.layer, stop):
            x = self.layers[i](x, state.source, state.target, distance, rbf)
            yield GraphState({"X": x}, state.edges, state.source, state.target, i + 1)

    @property
    def interaction_layers(self) -> nn.ModuleList:
        return self.layers

    @property
    def readout_modules(self) -> list[nn.Module]:
        return [self.linear, self.out_norm]

    def readout(self, state: GraphState) -> tuple[Tensor, Tensor]:
        """Scalar ``(N, H)`` and vector ``(N, 3, H)`` outputs of the per-atom tensors ``X``.

        ``x = SiLU(W · LayerNorm([‖I‖², ‖A‖², ‖S‖²]))`` and the axial vectors of ``A``.
        """
        parts = decompose(state.nodes["X"])
        weighted = parts.square() * _constant(NORM_WEIGHT, parts).unsqueeze(-1)
        norms = torch.cat(
            (
                weighted[:, ISO].sum(dim=1),
                weighted[:, AXIAL].sum(dim=1),
                weighted[:, SYM].sum(dim=1),
            ),
            dim=-1,
        )
        return F.silu(self.linear(self.out_norm(norms))), parts[:, AXIAL].contiguous()
