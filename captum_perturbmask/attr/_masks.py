"""Mask designs: how a vector of on/off *cells* becomes a mask over every input tensor.

A design is the poster's ``upsample`` line made concrete. Two kinds of part exist:

* :class:`GridPart` for an image ``(B, C, H, W)`` or a time series ``(B, C, T)``: a
  low-resolution grid of ``h x w`` (or ``t``) cells, upsampled bilinearly (linearly) to
  ``(cells + 1) * cell_size`` and cropped at a random sub-cell shift, exactly as RISE does. The
  regression features are the fraction of each cell of a finer grid that a mask keeps.
  Upsampling and cropping are linear in the cells and separable per axis, so both the mask and
  its features are two small batched matrix products with interpolation tables precomputed
  once per shape (one table row per possible shift).
* :class:`GroupPart` for a user ``feature_mask`` (superpixels, or any grouping; ids are shared
  across the tensors of a tuple as in Captum) and for other tensors such as ``(B, F)``, where
  every element is its own group. Masks are the cell values gathered by group id.

All methods are batched over rows, stay on the inputs' device and never synchronise with the
host (the one exception: ``torch.unique`` of a user ``feature_mask``, once per call).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_FEATURES = 4096  # F x F statistics per input: 64 MiB each in float32

_CACHE: OrderedDict[tuple, object] = OrderedDict()
_CACHE_SIZE = 64


def _cached(key: tuple, build: object) -> object:
    """A small LRU cache of constant tensors per (shape, device, dtype): built once, never
    mutated by their users."""
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    value = build()  # type: ignore[operator]
    _CACHE[key] = value
    if len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return value


def _path_laplacian(n: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Laplacian of a path of ``n`` nodes (tridiagonal ``-1, 2, -1``, ends of degree 1)."""
    if n == 1:
        return torch.zeros(1, 1, device=device, dtype=dtype)
    degree = torch.full((n,), 2.0, device=device, dtype=dtype)
    degree[0] = degree[-1] = 1.0
    off = torch.ones(n - 1, device=device, dtype=dtype)
    return torch.diag(degree) - torch.diag(off, 1) - torch.diag(off, -1)


def grid_laplacian(shape: Sequence[int], device: torch.device, dtype: torch.dtype) -> Tensor:
    r"""Graph Laplacian of the 4-neighbour (2-neighbour in 1-D) grid of ``shape``.

    The Kronecker sum of the path Laplacians of the axes, so :math:`s^\top L s` is the
    poster's total variation :math:`V(s) = \sum_{a \sim b} (s_a - s_b)^2`. Cached per shape,
    device and dtype (do not modify the result).

    Example:
        >>> grid_laplacian((1, 3), torch.device("cpu"), torch.float32)
        tensor([[ 1., -1.,  0.],
                [-1.,  2., -1.],
                [ 0., -1.,  1.]])
    """
    shape = tuple(int(s) for s in shape)

    def build() -> Tensor:
        lap = torch.zeros(1, 1, device=device, dtype=dtype)
        for n in shape:  # L_(A x B) = L_A (x) I_B + I_A (x) L_B
            eye_a = torch.eye(lap.shape[0], device=device, dtype=dtype)
            lap = torch.kron(lap, torch.eye(n, device=device, dtype=dtype)) + torch.kron(
                eye_a, _path_laplacian(n, device, dtype)
            )
        return lap

    return _cached(("laplacian", shape, device, dtype), build)  # type: ignore[return-value]


def adjacency_laplacian(first: Tensor, second: Tensor, n_groups: int, dtype: torch.dtype) -> Tensor:
    """Laplacian of the graph with edges ``first[..., i] -- second[..., i]`` between group ids.

    Args:
        first, second: ids of neighbouring positions, :math:`(B_f, P)` (``B_f`` 1 or ``B``).
        n_groups: number of groups :math:`K`.
        dtype: dtype of the result.

    Returns:
        :math:`(B_f, K, K)`; self-edges (neighbours in the same group) are dropped.
    """
    bf = first.shape[0]
    adj = torch.zeros(bf, n_groups, n_groups, device=first.device, dtype=dtype)
    if first.numel():
        rows = torch.arange(bf, device=first.device)[:, None].expand_as(first)
        one = torch.ones((), device=first.device, dtype=dtype).expand(first.numel())
        adj.index_put_((rows.reshape(-1), first.reshape(-1), second.reshape(-1)), one)
        adj.index_put_((rows.reshape(-1), second.reshape(-1), first.reshape(-1)), one)
        adj.diagonal(dim1=-2, dim2=-1).zero_()
    lap = adj.neg_()
    lap.diagonal(dim1=-2, dim2=-1).sub_(adj.sum(-1))
    return lap


#: Default grid of a series: one cell per ``SERIES_STEPS_PER_CELL`` steps, clamped to
#: ``SERIES_GRID_RANGE`` cells.
SERIES_STEPS_PER_CELL = 8
SERIES_GRID_RANGE = (8, 32)


def default_grid(spatial: Sequence[int], image_grid: int = 8) -> tuple[int, ...]:
    """The default low-resolution grid of an input's spatial dims.

    * images :math:`(H, W)`: ``image_grid`` cells per side;
    * series :math:`(T,)`: ``ceil(T / 8)`` cells, at least 8 and at most 32 — cells of about 8
      steps on short series (50-250 steps), at most 32 cells on long ones, so the map resolves
      motifs at any length.

    Example:
        >>> [default_grid(s) for s in [(64, 64), (150,), (40,), (10000,)]]
        [(8, 8), (19,), (8,), (32,)]
    """
    if len(spatial) == 2:
        return (image_grid, image_grid)
    lo, hi = SERIES_GRID_RANGE
    return (min(hi, max(lo, math.ceil(spatial[0] / SERIES_STEPS_PER_CELL))),)


def _per_dim(size: Sequence[int], nd: int) -> tuple[int, ...]:
    """A 1- or 2-element size for ``nd`` spatial dims (the last ``nd`` entries, or repeated)."""
    return tuple(size[-nd:]) if len(size) >= nd else (size[0],) * nd


def _axis_tables(
    g: int, n: int, cell: int, fine: int, shift: bool, device: torch.device, dtype: torch.dtype
) -> tuple[Tensor, Tensor]:
    """Interpolation tables of one axis: ``T[s]`` :math:`(n, g)` maps ``g`` cells to the ``n``
    positions of a mask cropped at shift ``s`` (``F.interpolate``'s linear weights, applied to
    the identity), and ``Q[s] = P T[s]`` :math:`(f, g)` maps them to the fraction of each of
    the ``f`` fine cells kept (``P`` is adaptive average pooling). Without shift one entry."""
    eye = torch.eye(g, device=device, dtype=torch.float64).unsqueeze(1)  # (g, 1, g)
    size = (g + 1) * cell if shift else n
    up = F.interpolate(eye, size=size, mode="linear", align_corners=False)[:, 0].mT  # (size, g)
    if shift:
        table = torch.stack([up[s : s + n] for s in range(cell)])  # (cell, n, g)
    else:
        table = up.unsqueeze(0)
    pool = F.adaptive_avg_pool1d(torch.eye(n, device=device, dtype=torch.float64)[None], fine)
    q = pool[0].mT @ table  # (entries, f, g)
    return table.to(dtype), q.to(dtype)


class GridPart:
    """A low-resolution grid over the trailing 1 or 2 dims of one input tensor."""

    def __init__(
        self,
        tensor_index: int,
        sample_shape: Sequence[int],
        grid_size: Sequence[int],
        fine_size: Sequence[int],
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.tensor_index = tensor_index
        self.sample_shape = tuple(sample_shape)
        self.spatial = tuple(sample_shape[1:])
        nd = len(self.spatial)
        self.grid = tuple(min(g, s) for g, s in zip(grid_size, self.spatial, strict=True))
        self.cell = tuple(math.ceil(s / g) for s, g in zip(self.spatial, self.grid, strict=True))
        self.up = tuple((g + 1) * c for g, c in zip(self.grid, self.cell, strict=True))
        self.fine = tuple(min(f, s) for f, s in zip(fine_size, self.spatial, strict=True))
        self.n_cells = math.prod(self.grid)
        self.n_feat = math.prod(self.fine)
        self.n_shift = nd
        self.shift_high = self.cell
        self.device, self.dtype = device, dtype

    def _tables(self, shift: bool) -> list[tuple[Tensor, Tensor]]:
        key = ("tables", self.grid, self.spatial, self.cell, self.fine, shift, self.device,
               self.dtype)  # fmt: skip
        return _cached(key, lambda: [  # type: ignore[return-value]
            _axis_tables(g, n, c, f, shift, self.device, self.dtype)
            for g, n, c, f in zip(self.grid, self.spatial, self.cell, self.fine, strict=True)
        ])  # fmt: skip

    def laplacian(self) -> Tensor:
        return grid_laplacian(self.fine, self.device, self.dtype)

    def cell_laplacian(self) -> Tensor:
        return grid_laplacian(self.grid, self.device, self.dtype)

    def render(
        self, cells: Tensor, shifts: Tensor | None, masks: bool = True
    ) -> tuple[Tensor | None, Tensor]:
        """``(R, n_cells)`` cells and ``(R, nd)`` shifts (``None``: no crop, the literal
        reading) -> soft masks ``(R, 1, *spatial)`` (``None`` unless ``masks``) and features
        ``(R, n_feat)``."""
        r = cells.shape[0]
        grid = cells.to(self.dtype).reshape(r, *self.grid)
        picked = []
        for d, (table, q) in enumerate(self._tables(shifts is not None)):
            if shifts is None:
                picked.append((table.expand(r, -1, -1), q.expand(r, -1, -1)))
            else:
                s = shifts[:, d]
                picked.append((table.index_select(0, s), q.index_select(0, s)))
        if len(picked) == 1:  # a series: (R, n, g) @ (R, g, 1)
            (t, q), col = picked[0], grid.unsqueeze(-1)
            mask = torch.bmm(t, col).reshape(r, 1, *self.spatial) if masks else None
            return mask, torch.bmm(q, col).reshape(r, self.n_feat)
        (ty, qy), (tx, qx) = picked
        mask = torch.bmm(torch.bmm(ty, grid), tx.mT).unsqueeze(1) if masks else None
        return mask, torch.bmm(torch.bmm(qy, grid), qx.mT).reshape(r, self.n_feat)

    def keep_probability(self, q: Tensor, shifts: Tensor | None) -> Tensor:
        """Per-cell keep-probabilities ``(B, R, n_cells)`` for masks with ``shifts`` ``(R, nd)``:
        the fine-grid map ``q`` ``(B, n_feat)`` read (bilinearly) where each cell's centre lands
        in the image once the mask is upsampled and shifted."""
        b, r = q.shape[0], 1 if shifts is None else shifts.shape[0]
        coords = []
        for d, (g, n) in enumerate(zip(self.grid, self.spatial, strict=True)):
            centre = torch.arange(g, device=q.device, dtype=q.dtype) + 0.5
            if shifts is None:  # plain upsampling to the input size
                pos = (centre * n / g).expand(r, g)
            else:  # upsampled to (g + 1) * cell and cropped at the shift
                pos = centre * self.up[d] / g - shifts[:, d : d + 1].to(q.dtype)
            coords.append(pos / n * 2 - 1)  # grid_sample's [-1, 1], align_corners=False
        if len(coords) == 1:  # a series: one row
            gx = coords[0]
            gy = torch.zeros_like(gx)
            fine = (1, self.fine[0])
        else:
            gy = coords[0][:, :, None].expand(r, *self.grid)
            gx = coords[1][:, None, :].expand(r, *self.grid)
            fine = self.fine
        grid = torch.stack([gx.reshape(r, -1), gy.reshape(r, -1)], -1)  # (R, n_cells, 2)
        grid = grid.reshape(1, r * self.n_cells, 1, 2).expand(b, -1, -1, -1)
        out = F.grid_sample(
            q.reshape(b, 1, *fine), grid, mode="bilinear", padding_mode="border",
            align_corners=False,
        )  # fmt: skip
        return out.reshape(b, r, self.n_cells)

    def to_attr(self, scores: Tensor, from_cells: bool = False) -> Tensor:
        """``(B, n_feat)`` (or ``(B, n_cells)``) scores -> ``(B, *sample_shape)``."""
        size = self.grid if from_cells else self.fine
        b = scores.shape[0]
        m = scores.reshape(b, 1, *size)
        if tuple(size) != self.spatial:
            mode = "bilinear" if len(self.spatial) == 2 else "linear"
            m = F.interpolate(m, size=self.spatial, mode=mode, align_corners=False)
        return m.expand(b, *self.sample_shape)


class GroupPart:
    """Groups of positions (``feature_mask`` ids, shared across the tensors of a tuple)."""

    def __init__(
        self,
        tensor_indices: Sequence[int],
        masks: Sequence[Tensor],
        n_groups: int,
        spatial_adjacency: bool,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.tensor_indices = tuple(tensor_indices)
        self.masks = [m.reshape(m.shape[0], -1) for m in masks]  # (Bf, P_t), ids in [0, K)
        self.shapes = [tuple(m.shape[1:]) for m in masks]
        self.per_example = masks[0].shape[0] > 1
        self.n_cells = self.n_feat = n_groups
        self.n_shift = 0
        self.shift_high: tuple[int, ...] = ()
        self._raw = list(masks)
        self.spatial_adjacency = spatial_adjacency
        self.device, self.dtype = device, dtype

    def laplacian(self) -> Tensor:
        """``(K, K)``, or ``(B, K, K)`` for per-example masks: neighbours along the spatial
        dims (H, W or T, never C) of every covered tensor."""
        firsts, seconds = [], []
        if self.spatial_adjacency:
            for m in self._raw:  # (Bf, C, H, W), (Bf, C, T) or (Bf, F)
                for d in range(max(2, m.dim() - 2), m.dim()):
                    if m.shape[d] > 1:
                        n = m.shape[d] - 1
                        firsts.append(m.narrow(d, 0, n).reshape(m.shape[0], -1))
                        seconds.append(m.narrow(d, 1, n).reshape(m.shape[0], -1))
        bf = self._raw[0].shape[0]
        empty = torch.zeros(bf, 0, dtype=torch.long, device=self.device)
        first = torch.cat(firsts, 1) if firsts else empty
        second = torch.cat(seconds, 1) if seconds else empty
        lap = adjacency_laplacian(first, second, self.n_cells, self.dtype)
        return lap if self.per_example else lap[0]

    def cell_laplacian(self) -> Tensor:
        return self.laplacian()

    def keep_probability(self, q: Tensor, rows: int) -> Tensor:
        """Groups are cells and features at once: ``(B, K)`` -> ``(B, rows, K)``."""
        return q.unsqueeze(1).expand(-1, rows, -1)

    def render(self, cells: Tensor, index: Tensor | None) -> list[Tensor]:
        """``(R, K)`` cells -> one ``(R, *shape_t)`` mask per covered tensor; ``index``
        ``(R,)`` says which example each row belongs to (per-example masks only)."""
        out = []
        for m, shape in zip(self.masks, self.shapes, strict=True):
            if self.per_example:
                assert index is not None, "per-example feature masks need the row index"
                vals = cells.gather(1, m.index_select(0, index))
            else:
                vals = cells.index_select(1, m[0])
            out.append(vals.reshape(cells.shape[0], *shape))
        return out

    def to_attr(self, scores: Tensor, from_cells: bool = False) -> list[Tensor]:
        b = scores.shape[0]
        out = []
        for m, shape in zip(self.masks, self.shapes, strict=True):
            idx = m.expand(b, -1) if not self.per_example else m
            out.append(scores.gather(1, idx).reshape(b, *shape))
        return out


class MaskDesign:
    """All parts of one attribution call, laid end to end in one cell and one feature vector.

    Args:
        inputs: the formatted input tuple.
        feature_mask: ``None`` or a tuple of integer masks broadcastable to the inputs (checked
            by ``format_feature_mask``).
        grid_size: cells per spatial dim; ``None`` for :func:`default_grid`.
        fine_size: regression features per spatial dim (default ``2 * grid_size``).
        dtype: dtype of masks and features.
        image_grid: cells per side of the default grid on images.
    """

    def __init__(
        self,
        inputs: tuple[Tensor, ...],
        feature_mask: tuple[Tensor, ...] | None,
        grid_size: Sequence[int] | None,
        fine_size: Sequence[int] | None,
        dtype: torch.dtype,
        image_grid: int = 8,
    ) -> None:
        device = inputs[0].device
        self.inputs_shapes = [tuple(x.shape[1:]) for x in inputs]
        self.parts: list[GridPart | GroupPart] = []
        if feature_mask is not None:
            bmax = max(m.shape[0] for m in feature_mask)
            expanded = [
                m.expand(bmax, *x.shape[1:]) for m, x in zip(feature_mask, inputs, strict=True)
            ]
            flat = torch.cat([m.reshape(bmax, -1) for m in expanded], 1)
            values, inverse = torch.unique(flat, return_inverse=True)  # the one host sync
            remapped, start = [], 0
            for m in expanded:
                p = m[0].numel()
                remapped.append(inverse[:, start : start + p].reshape(m.shape))
                start += p
            self.parts.append(
                GroupPart(range(len(inputs)), remapped, values.numel(), True, device, dtype)
            )
        else:
            for i, x in enumerate(inputs):
                nd = x.dim() - 2
                if nd in (1, 2):
                    g = (
                        _per_dim(grid_size, nd)
                        if grid_size is not None
                        else default_grid(tuple(x.shape[2:]), image_grid)
                    )
                    f = tuple(2 * v for v in g) if fine_size is None else _per_dim(fine_size, nd)
                    self.parts.append(GridPart(i, x.shape[1:], g, f, device, dtype))
                else:
                    ids = torch.arange(x[0].numel(), device=device).reshape(1, *x.shape[1:])
                    self.parts.append(GroupPart((i,), [ids], ids.numel(), False, device, dtype))
        self.cell_slices, self.feat_slices, self.shift_slices = [], [], []
        c = f = s = 0
        for p in self.parts:
            self.cell_slices.append(slice(c, c + p.n_cells))
            self.feat_slices.append(slice(f, f + p.n_feat))
            self.shift_slices.append(slice(s, s + p.n_shift))
            c, f, s = c + p.n_cells, f + p.n_feat, s + p.n_shift
        self.n_cells, self.n_feat, self.n_shift = c, f, s
        if f > MAX_FEATURES:
            raise ValueError(
                f"the mask design has {f} cells/features (> {MAX_FEATURES}); the estimator keeps "
                "an F x F matrix per input: pass a coarser `feature_mask` (fewer groups) or use "
                "(B, C, H, W) / (B, C, T) inputs with `grid_size`"
            )
        self.shift_high = [h for p in self.parts for h in p.shift_high]
        #: masks differ per example even for shared cells (per-example feature masks)
        self.per_example_masks = any(isinstance(p, GroupPart) and p.per_example
                                     for p in self.parts)  # fmt: skip
        self.device, self.dtype = device, dtype

    def sample_shifts(self, n: int, generator: torch.Generator) -> Tensor:
        """``(n, n_shift)`` random sub-cell offsets in ``[0, cell_size)``."""
        u = torch.rand(n, self.n_shift, generator=generator, device=self.device)
        if self.n_shift == 0:
            return u.long()
        if len(set(self.shift_high)) == 1:  # one multiplier: a Python scalar, no H2D copy
            return (u * self.shift_high[0]).long()
        return torch.stack([(u[:, i] * h).long() for i, h in enumerate(self.shift_high)], 1)

    def keep_probability(self, q: Tensor, shifts: Tensor | None, rows: int) -> Tensor:
        """Per-cell keep-probabilities ``(B, rows, n_cells)`` of ``rows`` masks from a map of
        keep-probabilities over the features ``q`` ``(B, n_feat)`` (see
        :meth:`GridPart.keep_probability`); ``shifts`` ``(rows, n_shift)`` or ``None``."""
        out = []
        for p, fs, ss in zip(self.parts, self.feat_slices, self.shift_slices, strict=True):
            if isinstance(p, GridPart):
                out.append(p.keep_probability(q[:, fs], None if shifts is None else shifts[:, ss]))
            else:
                out.append(p.keep_probability(q[:, fs], rows))
        return torch.cat(out, -1)

    def render(
        self, cells: Tensor, shifts: Tensor | None, index: Tensor | None = None,
        masks: bool = True,
    ) -> tuple[list[Tensor | None], Tensor]:  # fmt: skip
        """Masks per input tensor, ``(R, 1, *spatial)`` or ``(R, *sample_shape)`` (broadcastable
        to the rows; ``None`` entries unless ``masks``), and features ``(R, F)``.

        ``cells`` ``(R, n_cells)``; ``shifts`` ``(R, n_shift)`` or ``None``; ``index`` ``(R,)``
        the example of each row, needed for per-example feature masks only.
        """
        out: list[Tensor | None] = [None] * len(self.inputs_shapes)
        feats = []
        for p, cs, ss in zip(self.parts, self.cell_slices, self.shift_slices, strict=True):
            c = cells if len(self.parts) == 1 else cells[:, cs]
            if isinstance(p, GridPart):
                sh = None if shifts is None else shifts if len(self.parts) == 1 else shifts[:, ss]
                m, fe = p.render(c, sh, masks)
                out[p.tensor_index] = m
                feats.append(fe)
            else:
                c = c.to(self.dtype)
                if masks:
                    for t, m in zip(p.tensor_indices, p.render(c, index), strict=True):
                        out[t] = m
                feats.append(c)
        return out, feats[0] if len(feats) == 1 else torch.cat(feats, 1)

    def laplacian(self, cells: bool = False) -> Tensor:
        """Block-diagonal Laplacian over features (or cells), ``(F, F)`` or, for per-example
        feature masks, ``(B, F, F)``."""
        blocks = [p.cell_laplacian() if cells else p.laplacian() for p in self.parts]
        if len(blocks) == 1:
            return blocks[0]
        batched = [b for b in blocks if b.dim() == 3]
        if batched:
            bsz = batched[0].shape[0]
            blocks = [b if b.dim() == 3 else b.expand(bsz, -1, -1) for b in blocks]
            return torch.stack([torch.block_diag(*[b[i] for b in blocks]) for i in range(bsz)])
        return torch.block_diag(*blocks)

    def to_attr(self, scores: Tensor, from_cells: bool = False) -> list[Tensor]:
        """Scores ``(B, F)`` (or ``(B, n_cells)``) -> attribution per input tensor."""
        out: list[Tensor | None] = [None] * len(self.inputs_shapes)
        slices = self.cell_slices if from_cells else self.feat_slices
        for p, sl in zip(self.parts, slices, strict=True):
            if isinstance(p, GridPart):
                out[p.tensor_index] = p.to_attr(scores[:, sl], from_cells)
            else:
                for t, a in zip(p.tensor_indices, p.to_attr(scores[:, sl]), strict=True):
                    out[t] = a
        return [a for a in out if a is not None]
