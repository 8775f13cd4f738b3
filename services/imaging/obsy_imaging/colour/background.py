"""Background gradient removal: a low-order polynomial surface fitted to the sky, stars masked.

Light pollution, the moon and a sky brightening towards the horizon add a smooth slope to a
stack; the slope differs per filter, so it tints one side of a colour image. The model:

1. **Stars masked**: pixels above ``median + mask_sigma x sigma`` (sigma = 1.4826 x MAD) and a
   few pixels around them (a dilation), so stars' wings do not lift the sky.
2. **A mesh of sky samples**: the image cut into ``mesh`` x ``mesh`` pixel cells; each cell's
   median of its unmasked pixels, where at least half of the cell is unmasked.
3. **A polynomial surface** of total degree ``order`` (0: a constant, 1: a plane, 2: the default,
   a quadric) fitted to the cell medians by least squares, in coordinates scaled to -1..1; cells
   more than 3 sigma from the surface (a galaxy's halo, a nebula) are dropped and it is fitted
   again, up to 5 rounds.

``remove_gradient`` subtracts the surface and adds back its mean, so the sky stays at its level
(a later neutralisation or stretch expects a positive background), flat to within the noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True)
class BackgroundModel:
    order: int
    coefficients: np.ndarray  # per term, in the order of _terms
    shape: tuple[int, int]
    cells_used: int
    cells_dropped: int

    def evaluate(self, rows: slice | None = None) -> np.ndarray:
        """The surface on the image's grid (or a band of its rows), float32."""
        height, width = self.shape
        rows = rows or slice(0, height)
        y = _scaled(np.arange(height, dtype=np.float64)[rows], height)[:, None]
        x = _scaled(np.arange(width, dtype=np.float64), width)[None, :]
        surface = np.zeros((len(y), width))
        for coefficient, (i, j) in zip(self.coefficients, _terms(self.order), strict=True):
            surface += coefficient * x**i * y**j
        return surface.astype(np.float32)

    @property
    def mean(self) -> float:
        """The surface's mean over the image (the level the sky is brought back to), summed a band of
        rows at a time (a whole 26 MP surface in float64 is 200 MB)."""
        height, width = self.shape
        step = max(1, (1 << 22) // max(width, 1))
        total = sum(
            float(self.evaluate(slice(r, min(r + step, height))).sum(dtype=np.float64)) for r in range(0, height, step)
        )
        return total / (height * width)


def _terms(order: int) -> list[tuple[int, int]]:
    return [(i, total - i) for total in range(order + 1) for i in range(total, -1, -1)]


def _scaled(pixels: np.ndarray, size: int) -> np.ndarray:
    return 2.0 * pixels / max(size - 1, 1) - 1.0


def star_mask(image: np.ndarray, mask_sigma: float = 3.0, grow: int = 3) -> np.ndarray:
    """True where a star (or anything well above the sky) is, and ``grow`` pixels around it; NaN too."""
    finite = np.isfinite(image)
    values = image[finite][:: max(1, int(finite.sum() // 500_000))]
    if values.size == 0:
        raise ValueError("the image has no finite pixels to fit a background to")
    median = float(np.median(values))
    sigma = MAD_TO_SIGMA * float(np.median(np.abs(values - median)))
    bright = np.where(finite, image > median + mask_sigma * sigma, True).astype(np.uint8)
    if grow > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        bright = cv2.dilate(bright, kernel)
    return bright.astype(bool)


def fit_background(
    image: np.ndarray,
    *,
    order: int = 2,
    mesh: int = 64,
    mask_sigma: float = 3.0,
    clip: float = 3.0,
    binning: int = 1,
    shape: tuple[int, int] | None = None,
) -> BackgroundModel:
    """The polynomial sky surface of a linear mono image (see the module's docstring).

    ``binning``: ``image`` is the full image of ``shape`` averaged over blocks of ``binning`` x
    ``binning`` pixels (a 26 MP stack fitted on a few MP): the cells are ``mesh / binning`` binned
    pixels wide, so they cover the same sky, and the surface is on the full image's grid.
    """
    if image.ndim != 2:
        raise ValueError(f"a background is fitted to a 2-D image, not shape {image.shape}")
    if not 0 <= order <= 4:
        raise ValueError(f"the background's polynomial order must be 0 to 4, not {order}")
    if binning < 1:
        raise ValueError(f"the binning must be at least 1, not {binning}")
    full = shape or (image.shape[0] * binning, image.shape[1] * binning)
    mesh = max(4, mesh // binning) if binning > 1 else mesh
    height, width = image.shape
    mask = star_mask(image, mask_sigma)
    xs, ys, values = [], [], []
    for r0 in range(0, height - mesh // 2, mesh):
        for c0 in range(0, width - mesh // 2, mesh):
            cell = image[r0 : r0 + mesh, c0 : c0 + mesh]
            sky = cell[~mask[r0 : r0 + mesh, c0 : c0 + mesh]]
            if sky.size < cell.size // 2:
                continue
            ys.append((r0 + (cell.shape[0] - 1) / 2) * binning + (binning - 1) / 2)  # on the full grid
            xs.append((c0 + (cell.shape[1] - 1) / 2) * binning + (binning - 1) / 2)
            values.append(float(np.median(sky)))
    terms = _terms(order)
    if len(values) < 2 * len(terms):
        raise ValueError(
            f"only {len(values)} sky cells of {mesh} px free of stars: too few to fit a surface of order {order}"
        )
    x, y, z = _scaled(np.array(xs), full[1]), _scaled(np.array(ys), full[0]), np.array(values)
    design = np.column_stack([x**i * y**j for i, j in terms])
    keep = np.ones(len(z), dtype=bool)
    for _ in range(5):
        coefficients, *_ = np.linalg.lstsq(design[keep], z[keep], rcond=None)
        residual = z - design @ coefficients
        sigma = MAD_TO_SIGMA * float(np.median(np.abs(residual[keep] - np.median(residual[keep]))))
        new_keep = np.abs(residual) <= clip * sigma if sigma > 0 else keep
        if new_keep.sum() < 2 * len(terms) or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return BackgroundModel(order, coefficients, (int(full[0]), int(full[1])), int(keep.sum()), int((~keep).sum()))


def remove_gradient(image: np.ndarray, *, order: int = 2, mesh: int = 64) -> tuple[np.ndarray, BackgroundModel]:
    """The image less its sky surface, the surface's mean added back; and the model."""
    model = fit_background(image, order=order, mesh=mesh)
    surface = model.evaluate()
    return (image.astype(np.float32) - surface + np.float32(surface.mean())), model
