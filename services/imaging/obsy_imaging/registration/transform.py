"""A 2-D transform between frames as a 2x3 matrix, fitted by least squares to star pairs.

Convention: ``transform.apply(x, y)`` maps a pixel of the *frame* to where the same sky lands on
the *reference* (pixel centres at integers, x along a row, y down the columns), which is what
OpenCV's ``warpAffine`` takes as its forward matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

TransformKind = Literal["similarity", "affine"]


@dataclass(frozen=True)
class Transform:
    matrix: np.ndarray  # (2, 3): [[a, b, tx], [c, d, ty]]

    @classmethod
    def identity(cls) -> Transform:
        return cls(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))

    @classmethod
    def from_parameters(
        cls, *, dx: float = 0.0, dy: float = 0.0, rotation_deg: float = 0.0, scale: float = 1.0
    ) -> Transform:
        """Rotation (counter-clockwise on the sky as displayed with y up, i.e. from +x towards +y)
        and scale about the origin, then the shift."""
        c, s = scale * math.cos(math.radians(rotation_deg)), scale * math.sin(math.radians(rotation_deg))
        return cls(np.array([[c, -s, dx], [s, c, dy]]))

    @classmethod
    def fit(cls, source: np.ndarray, target: np.ndarray, kind: TransformKind = "similarity") -> Transform:
        """The least-squares transform taking ``source`` (N, 2) points onto ``target`` (N, 2)."""
        source, target = np.asarray(source, float), np.asarray(target, float)
        needed = 2 if kind == "similarity" else 3
        if len(source) != len(target) or len(source) < needed:
            raise ValueError(f"a {kind} transform needs at least {needed} matched pairs, got {len(source)}")
        x, y = source[:, 0], source[:, 1]
        one, zero = np.ones_like(x), np.zeros_like(x)
        if kind == "similarity":
            # x' = a x - b y + tx ; y' = b x + a y + ty
            design = np.concatenate([np.stack([x, -y, one, zero], 1), np.stack([y, x, zero, one], 1)])
            a, b, tx, ty = np.linalg.lstsq(design, np.concatenate([target[:, 0], target[:, 1]]), rcond=None)[0]
            return cls(np.array([[a, -b, tx], [b, a, ty]]))
        if kind == "affine":
            design = np.stack([x, y, one], 1)
            rows = np.linalg.lstsq(design, target, rcond=None)[0]  # (3, 2)
            return cls(rows.T.copy())
        raise ValueError(f"unknown transform kind {kind!r} (similarity or affine)")

    def apply(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m = self.matrix
        return m[0, 0] * x + m[0, 1] * y + m[0, 2], m[1, 0] * x + m[1, 1] * y + m[1, 2]

    def inverse(self) -> Transform:
        full = np.vstack([self.matrix, [0.0, 0.0, 1.0]])
        return Transform(np.linalg.inv(full)[:2])

    def compose(self, then: Transform) -> Transform:
        """This transform followed by ``then``."""
        full = np.vstack([then.matrix, [0.0, 0.0, 1.0]]) @ np.vstack([self.matrix, [0.0, 0.0, 1.0]])
        return Transform(full[:2])

    @property
    def rotation_deg(self) -> float:
        return math.degrees(math.atan2(self.matrix[1, 0] - self.matrix[0, 1], self.matrix[0, 0] + self.matrix[1, 1]))

    @property
    def scale(self) -> float:
        return math.sqrt(abs(np.linalg.det(self.matrix[:, :2])))

    @property
    def shift(self) -> tuple[float, float]:
        return float(self.matrix[0, 2]), float(self.matrix[1, 2])

    def max_difference_px(self, other: Transform, width: int, height: int) -> float:
        """The largest distance between where the two put a pixel of a width x height frame (its corners)."""
        x = np.array([0.0, width - 1, 0.0, width - 1, (width - 1) / 2])
        y = np.array([0.0, 0.0, height - 1, height - 1, (height - 1) / 2])
        ax, ay = self.apply(x, y)
        bx, by = other.apply(x, y)
        return float(np.max(np.hypot(ax - bx, ay - by)))
