"""Building blocks shared by the TorchMD-Net style encoders (ET, TensorNet).

* :class:`CosineCutoff`: smooth envelope ``0.5 (cos(π d / r_c) + 1)`` for ``d < r_c``, else 0;
* :class:`ExpNormalSmearing`: the "expnorm" radial basis
  ``exp(-β_k (exp(-α d) - μ_k)²) · cutoff(d)`` with ``α = 5 / r_c`` (PhysNet's basis);
* :func:`unit_vectors`: edge directions, leaving the zero vectors of self-loops at zero;
* :func:`edge_chunks`: slices of the edge list that bound the size of per-edge temporaries;
* :func:`fused`: the per-edge-chunk message functions, compiled by ``torch.compile`` into a few
  fused kernels where that pays (CUDA by default), with a clean fallback to eager PyTorch.

Distances are in Å throughout.
"""

from __future__ import annotations

import inspect
import math
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import torch
from torch import Tensor, nn

__all__ = [
    "EDGE_CHUNK_ELEMENTS",
    "GPU_EDGE_CHUNK_ELEMENTS",
    "CosineCutoff",
    "ExpNormalSmearing",
    "chunk_elements",
    "compile_mode",
    "compile_on_cpu",
    "edge_chunks",
    "fused",
    "unit_vectors",
]


class CosineCutoff(nn.Module):
    """Cosine envelope that decays smoothly from 1 at ``d = 0`` to 0 at ``d = cutoff``.

    Parameters
    ----------
    cutoff : float
        Upper cutoff in Å; the lower cutoff is 0.
    """

    def __init__(self, cutoff: float) -> None:
        super().__init__()
        self.cutoff = float(cutoff)

    def forward(self, distance: Tensor) -> Tensor:
        """Envelope of ``distance`` (any shape, Å); same shape, zero beyond the cutoff."""
        envelope = 0.5 * (torch.cos(distance * (math.pi / self.cutoff)) + 1.0)
        return envelope * (distance < self.cutoff).to(distance.dtype)


class ExpNormalSmearing(nn.Module):
    """Exponential-normal radial basis functions multiplied by a cosine cutoff.

    ``means`` and ``betas`` are buffers (they come from the checkpoint); their initial values
    follow the usual recipe: means evenly spaced in ``[exp(-r_c), 1]`` and all betas equal to
    ``(2 / num_rbf · (1 - exp(-r_c)))⁻²``.

    Parameters
    ----------
    cutoff : float
        Upper cutoff in Å; the lower cutoff is 0.
    num_rbf : int
        Number of basis functions ``K``.
    """

    def __init__(self, cutoff: float, num_rbf: int) -> None:
        super().__init__()
        self.cutoff = float(cutoff)
        self.num_rbf = int(num_rbf)
        self.alpha = 5.0 / self.cutoff
        self.cutoff_fn = CosineCutoff(cutoff)
        start = math.exp(-self.cutoff)
        self.register_buffer("means", torch.linspace(start, 1.0, self.num_rbf))
        beta = (2.0 / self.num_rbf * (1.0 - start)) ** -2
        self.register_buffer("betas", torch.full((self.num_rbf,), beta))

    def forward(self, distance: Tensor) -> Tensor:
        """Basis of ``distance`` with shape (E,) in Å; returns shape (E, K)."""
        d = distance.unsqueeze(-1)
        gauss = torch.exp(-self.betas * (torch.exp(-self.alpha * d) - self.means) ** 2)
        return self.cutoff_fn(d) * gauss


def unit_vectors(vec: Tensor, length: Tensor) -> Tensor:
    """Directions ``vec / length`` of edges; zero-length edges (self-loops) stay zero.

    Parameters
    ----------
    vec : Tensor, shape (E, 3)
        Edge vectors in Å.
    length : Tensor, shape (E,)
        Their norms in Å.

    Returns
    -------
    Tensor, shape (E, 3)
        Unit vectors, or zero vectors where ``length == 0``.
    """
    safe = torch.where(length == 0, torch.ones_like(length), length)
    return vec / safe.unsqueeze(-1)


#: Default bound on the number of elements of one per-edge temporary (see :func:`edge_chunks`).
EDGE_CHUNK_ELEMENTS = 2**20
#: The same bound on a GPU, where fewer, larger kernels are faster and memory is not paged in.
GPU_EDGE_CHUNK_ELEMENTS = 2**26


def chunk_elements(device: torch.device) -> int:
    """Bound on per-edge temporaries for ``device`` (small on CPU, large on GPU)."""
    return EDGE_CHUNK_ELEMENTS if device.type == "cpu" else GPU_EDGE_CHUNK_ELEMENTS


def edge_chunks(
    num_edges: int, per_edge: int, max_elements: int = EDGE_CHUNK_ELEMENTS
) -> Iterator[slice]:
    """Consecutive slices covering ``range(num_edges)``, each with ``≤ max_elements / per_edge``.

    Message passing over a protein-sized edge list in one go creates temporaries of hundreds of
    MB; processing the edges in chunks of a few MB and scattering each chunk into the node
    accumulators gives the same sums, keeps the temporaries in cache and lets the allocator
    reuse their memory (freshly mapped pages are expensive to touch).

    Parameters
    ----------
    num_edges : int
        Number of edges ``E``.
    per_edge : int
        Elements per edge of the largest temporary (e.g. ``3 * H``).
    max_elements : int
        Bound on ``chunk length × per_edge``.
    """
    size = max(1, max_elements // max(1, per_edge))
    for start in range(0, num_edges, size):
        yield slice(start, min(start + size, num_edges))


#: Environment variable that chooses when the per-edge message functions are compiled:
#: ``auto`` (default: on CUDA devices, and on the CPU inside :func:`compile_on_cpu` blocks that
#: ask for it), ``always`` (CPU too; needs a C++ compiler) or ``never``.
COMPILE_ENV = "GEOMFEAT_COMPILE"
_CPU_COMPILE: ContextVar[bool] = ContextVar("geomfeat_cpu_compile", default=False)


@contextmanager
def compile_on_cpu(enabled: bool) -> Iterator[None]:
    """In ``auto`` mode, compile the message functions on the CPU too within this block.

    Compiling takes tens of seconds on a CPU (once per process; Inductor caches its kernels on
    disk), so :class:`~geomfeat.GeomFeaturizer` asks for it only for jobs long enough to
    amortise it.
    """
    token = _CPU_COMPILE.set(bool(enabled))
    try:
        yield
    finally:
        _CPU_COMPILE.reset(token)


def compile_mode() -> str:
    """The current :data:`COMPILE_ENV` setting (``auto``, ``always`` or ``never``)."""
    mode = os.environ.get(COMPILE_ENV, "auto").strip().lower() or "auto"
    if mode not in ("auto", "always", "never"):
        raise ValueError(f"{COMPILE_ENV}={mode!r}; choose from auto, always, never")
    return mode


class _Fused:
    """A per-edge-chunk function with a ``torch.compile``-d twin, used where it pays.

    The eager function is the reference; the compiled one fuses its gathers, elementwise work
    and scatter-adds into a few kernels (one pass over the edge tensors instead of ~20). Only
    the leading (edge or node) axis of the arguments named in ``dynamic`` is compiled as a
    dynamic size; feature axes stay static (symbolic feature sizes would turn every index
    computation of the generated kernels into run-time integer divisions). One compilation
    serves every chunk length, batch size and layer, since weights are arguments rather than
    module attributes. If compilation or a compiled call fails, a warning is issued once and
    the eager function is used from then on.
    """

    def __init__(self, fn: Callable, dynamic: tuple[str, ...]) -> None:
        self.eager = fn
        self.__doc__ = fn.__doc__
        self.__name__ = fn.__name__
        names = list(inspect.signature(fn).parameters)
        unknown = set(dynamic) - set(names)
        if unknown:
            raise ValueError(f"{fn.__name__} has no arguments {sorted(unknown)}")
        self.dynamic = tuple(names.index(name) for name in dynamic)
        self._compiled: Callable | None = None
        self.failed: str | None = None

    def wanted(self, device: torch.device) -> bool:
        """Whether the compiled version is used on ``device`` (setting and past failures)."""
        mode = compile_mode()
        if self.failed is not None or mode == "never":
            return False
        return mode == "always" or device.type == "cuda" or _CPU_COMPILE.get()

    def __call__(self, *args):
        device = next(a for a in args if isinstance(a, Tensor)).device
        if not self.wanted(device):
            return self.eager(*args)
        try:
            if self._compiled is None:
                self._compiled = torch.compile(self.eager, fullgraph=True)
            for position in self.dynamic:
                torch._dynamo.maybe_mark_dynamic(args[position], 0)
            return self._compiled(*args)
        except Exception as exc:  # no compiler, unsupported op, out of resources, ...
            self.failed = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
            warnings.warn(f"geomfeat: torch.compile of {self.__name__} failed ({self.failed}); "
                          "using eager PyTorch", RuntimeWarning, stacklevel=2)
            return self.eager(*args)


def fused(*dynamic: str) -> Callable[[Callable], _Fused]:
    """Decorator: run the function compiled where :func:`compile_mode` asks for it.

    ``dynamic`` names the arguments whose first axis varies between calls (edges of a chunk,
    nodes of a batch); see :class:`_Fused`. The function must take tensors (and plain
    numbers) positionally, may add into accumulator tensors in place (``index_add_``), and is
    traced whole (``fullgraph=True``).
    """
    return lambda fn: _Fused(fn, dynamic)
