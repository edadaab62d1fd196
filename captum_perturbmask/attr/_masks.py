"""Mask designs: how a vector of on/off *cells* becomes a mask over every input tensor.

A design is the poster's ``upsample`` line made concrete. Three kinds of part exist:

* :class:`GridPart` for an image ``(B, C, H, W)`` or a time series ``(B, C, T)``: a
  low-resolution grid of ``h x w`` (or ``t``) cells, upsampled bilinearly (linearly) to
  ``(cells + 1) * cell_size`` and cropped at a random sub-cell shift, exactly as RISE does. The
  regression features are the fraction of each cell of a finer grid that a mask keeps.
* :class:`GroupPart` for a user ``feature_mask`` (superpixels, or any grouping; ids are shared
  across the tensors of a tuple as in Captum) and for other tensors such as ``(B, F)``, where
  every element is its own group. Masks are the cell values gathered by group id.

All methods are batched over rows and stay on the inputs' device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_FEATURES = 4096  # F x F statistics per input: 64 MiB each in float32


def _grid_laplacian(shape: Sequence[int], device: torch.device, dtype: torch.dtype) -> Tensor:
    """Graph Laplacian of the 4-neighbour (2-neighbour in 1-D) grid of ``shape``."""
    n = math.prod(shape)
    idx = torch.arange(n, device=device).reshape(tuple(shape))
    pairs = []
    for d in range(len(shape)):
        if shape[d] > 1:
            a = idx.narrow(d, 0, shape[d] - 1).reshape(-1)
            b = idx.narrow(d, 1, shape[d] - 1).reshape(-1)
            pairs.append(torch.stack([a, b]))
    return _laplacian_from_pairs(pairs, n, device, dtype)


def _laplacian_from_pairs(
    pairs: list[Tensor], n: int, device: torch.device, dtype: torch.dtype
) -> Tensor:
    adj = torch.zeros(n, n, device=device, dtype=dtype)
    for p in pairs:
        keep = p[0] != p[1]
        a, b = p[0][keep], p[1][keep]
        adj[a, b] = 1.0
        adj[b, a] = 1.0
    degree = adj.sum(1)
    lap = adj.neg_()  # D - A built in place: no further (n, n) buffers
    lap.diagonal().add_(degree)
    return lap


#: Default grid of a series: one cell per ``SERIES_STEPS_PER_CELL`` steps, clamped to
#: ``SERIES_GRID_RANGE`` cells.
SERIES_STEPS_PER_CELL = 8
SERIES_GRID_RANGE = (8, 32)


def default_grid(spatial: Sequence[int], image_grid: int = 8) -> tuple[int, ...]:
    """The default low-resolution grid of an input's spatial dims.

    * images :math:`(H, W)`: ``image_grid`` cells per side (8 for PerturbMask, 7 for RISE);
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
        self.mode = "bilinear" if nd == 2 else "linear"
        self.n_cells = math.prod(self.grid)
        self.n_feat = math.prod(self.fine)
        self.n_shift = nd
        self.shift_high = self.cell
        self.device, self.dtype = device, dtype
        self._ar = [torch.arange(s, device=device) for s in self.spatial]

    def laplacian(self, examples: slice | None = None) -> Tensor:
        return _grid_laplacian(self.fine, self.device, self.dtype)

    def cell_laplacian(self, examples: slice | None = None) -> Tensor:
        return _grid_laplacian(self.grid, self.device, self.dtype)

    def render(self, cells: Tensor, shifts: Tensor | None) -> Tensor:
        """``(R, n_cells)`` cells and ``(R, nd)`` shifts -> soft mask ``(R, 1, *spatial)``."""
        r = cells.shape[0]
        grid = cells.reshape(r, 1, *self.grid)
        if shifts is None:  # plain upsampling, no RISE crop (the literal reading)
            return F.interpolate(grid, size=self.spatial, mode=self.mode, align_corners=False)
        up = F.interpolate(grid, size=self.up, mode=self.mode, align_corners=False)
        # crop a (*spatial) window at a per-row offset: one gather per spatial dim
        for d, (n, ar) in enumerate(zip(self.spatial, self._ar, strict=True)):
            idx = shifts[:, d : d + 1] + ar  # (R, n)
            view = [r, 1] + [1] * len(self.spatial)
            view[2 + d] = n
            idx = idx.reshape(view).expand(*up.shape[: 2 + d], n, *up.shape[3 + d :])
            up = up.gather(2 + d, idx)
        return up

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
                up = self.up[d]
                pos = centre * up / g - shifts[:, d : d + 1].to(q.dtype)
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

    def features(self, mask: Tensor) -> Tensor:
        """Fraction of each fine cell kept: ``(R, 1, *spatial)`` -> ``(R, n_feat)``."""
        pool = F.adaptive_avg_pool2d if len(self.spatial) == 2 else F.adaptive_avg_pool1d
        return pool(mask, self.fine).flatten(1)

    def to_attr(self, scores: Tensor, from_cells: bool = False) -> Tensor:
        """``(B, n_feat)`` (or ``(B, n_cells)``) scores -> ``(B, *sample_shape)``."""
        size = self.grid if from_cells else self.fine
        b = scores.shape[0]
        m = scores.reshape(b, 1, *size)
        if tuple(size) != self.spatial:
            m = F.interpolate(m, size=self.spatial, mode=self.mode, align_corners=False)
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

    def _laplacian_of(self, example: int) -> Tensor:
        pairs = []
        if self.spatial_adjacency:
            for m in self._raw:
                m = m[example]  # (C, H, W) or (C, T): neighbours along H, W or T, never C
                if m.dim() < 2:
                    continue  # tabular (F,): no spatial neighbours
                for d in range(max(1, m.dim() - 2), m.dim()):
                    if m.shape[d] > 1:
                        a = m.narrow(d, 0, m.shape[d] - 1).reshape(-1)
                        b = m.narrow(d, 1, m.shape[d] - 1).reshape(-1)
                        pairs.append(torch.stack([a, b]))
        return _laplacian_from_pairs(pairs, self.n_cells, self.device, self.dtype)

    def laplacian(self, examples: slice | None = None) -> Tensor:
        if not self.per_example:
            return self._laplacian_of(0)
        rows = range(self._raw[0].shape[0])[examples or slice(None)]
        return torch.stack([self._laplacian_of(i) for i in rows])

    def cell_laplacian(self, examples: slice | None = None) -> Tensor:
        return self.laplacian(examples)

    def keep_probability(self, q: Tensor, rows: int) -> Tensor:
        """Groups are cells and features at once: ``(B, K)`` -> ``(B, rows, K)``."""
        return q.unsqueeze(1).expand(-1, rows, -1)

    def render(self, cells: Tensor, index: Tensor) -> list[Tensor]:
        """``(R, K)`` cells -> one ``(R, *shape_t)`` mask per covered tensor."""
        out = []
        for m, shape in zip(self.masks, self.shapes, strict=True):
            if self.per_example:
                vals = cells.gather(1, m.index_select(0, index))
            else:
                vals = cells[:, m[0]]
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
            _, inverse = torch.unique(flat, return_inverse=True)
            n_groups = int(inverse.max()) + 1
            remapped, start = [], 0
            for m in expanded:
                p = m[0].numel()
                remapped.append(inverse[:, start : start + p].reshape(m.shape))
                start += p
            self.parts.append(
                GroupPart(range(len(inputs)), remapped, n_groups, True, device, dtype)
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
        self.shift_high = torch.tensor(
            [h for p in self.parts for h in p.shift_high], device=device, dtype=torch.long
        )
        self.device, self.dtype = device, dtype

    def sample_shifts(self, n: int, generator: torch.Generator) -> Tensor:
        """``(n, n_shift)`` random sub-cell offsets in ``[0, cell_size)``."""
        if self.n_shift == 0:
            return torch.zeros(n, 0, dtype=torch.long, device=self.device)
        u = torch.rand(n, self.n_shift, generator=generator, device=self.device)
        return (u * self.shift_high).long()

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
        self, cells: Tensor, shifts: Tensor | None, index: Tensor
    ) -> tuple[list[Tensor | None], Tensor]:
        """Masks per input tensor (broadcastable to the rows) and regression features."""
        masks: list[Tensor | None] = [None] * len(self.inputs_shapes)
        feats = []
        for p, cs, ss in zip(self.parts, self.cell_slices, self.shift_slices, strict=True):
            c = cells[:, cs]
            if isinstance(p, GridPart):
                m = p.render(c, None if shifts is None else shifts[:, ss])
                masks[p.tensor_index] = m
                feats.append(p.features(m))
            else:
                for t, m in zip(p.tensor_indices, p.render(c, index), strict=True):
                    masks[t] = m
                feats.append(c)
        return masks, torch.cat(feats, 1)

    def laplacian(self, cells: bool = False, examples: slice | None = None) -> Tensor:
        """Block-diagonal Laplacian over features (or cells), ``(F, F)`` or, for per-example
        feature masks, ``(B, F, F)`` (only the ``examples`` rows)."""
        blocks = [
            p.cell_laplacian(examples) if cells else p.laplacian(examples) for p in self.parts
        ]
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
