"""Running a TFLite sky classifier (mlCloudDetect style) through ai-edge-litert.

The model takes one 224 x 224 RGB image scaled to [-1, 1] (float32 input; a uint8
quantised input takes 0..255 instead) and gives one score per class; labels.txt names the
classes in order, as ``Clear`` or ``0 Clear`` lines. Everything that can be wrong with a
model (missing or corrupt file, wrong input shape or type, labels that do not match the
outputs) raises :class:`ClassifierError` when the classifier is built, so a service stops
at start with a clear message instead of failing on the first frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

INPUT_SIZE = 224


class ClassifierError(Exception):
    """A model or labels file that cannot be used."""


@dataclass(frozen=True)
class Classification:
    label: str
    confidence: float
    scores: dict[str, float]


def read_labels(path: Path) -> list[str]:
    """Class names, one a line; a leading index (``0 Clear``) is dropped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ClassifierError(f"cannot read labels file {path}: {exc}") from None
    labels = []
    for line in lines:
        parts = line.strip().split(maxsplit=1)
        if not parts:
            continue
        labels.append(parts[1] if len(parts) == 2 and parts[0].isdigit() else line.strip())
    if not labels:
        raise ClassifierError(f"labels file {path} names no classes")
    return labels


def to_rgb8(image: np.ndarray) -> np.ndarray:
    """An 8-bit RGB view of a frame as OpenCV loads it (BGR, grey, 16-bit or float)."""
    if image.dtype == np.uint16:
        image = (image / 257.0).astype(np.uint8)
    elif image.dtype != np.uint8:
        top = float(np.percentile(image, 99.9)) or 1.0
        image = np.clip(image * (255.0 / top), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def small_rgb8(image: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """The frame shrunk to size x size (area mean) first, then made 8-bit RGB: cheap on big frames."""
    if image.dtype not in (np.uint8, np.uint16, np.float32):
        image = image.astype(np.float32)
    factor = min(image.shape[:2]) // size
    if factor >= 4:
        # A big frame: reading every (factor // 2)-th row only (memory is the cost here) still
        # leaves each output pixel the mean of dozens of pixels.
        image = image[:: factor // 2]
    height, width = image.shape[:2]
    factor = min(width, height) // size
    if factor >= 2:  # OpenCV's area mean is several times faster by a whole factor: do that part first
        image = cv2.resize(image, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
    return to_rgb8(cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA))


def model_input(image: np.ndarray, size: int = INPUT_SIZE) -> np.ndarray:
    """The [1, size, size, 3] float32 tensor in [-1, 1] that mlCloudDetect models expect."""
    return (small_rgb8(image, size).astype(np.float32) / 127.5 - 1.0)[None, ...]


class SkyClassifier:
    def __init__(self, model_path: Path, labels_path: Path | None = None, threads: int = 2) -> None:
        from ai_edge_litert.interpreter import Interpreter

        model_path = Path(model_path)
        labels_path = Path(labels_path) if labels_path else model_path.with_name("labels.txt")
        if not model_path.is_file():
            raise ClassifierError(f"classifier model {model_path} does not exist")
        self.labels = read_labels(labels_path)
        try:
            self.interpreter = Interpreter(model_path=str(model_path), num_threads=threads)
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ClassifierError(f"{model_path} is not a usable TFLite model: {exc}") from None
        inputs = self.interpreter.get_input_details()
        outputs = self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ClassifierError(
                f"{model_path} has {len(inputs)} inputs and {len(outputs)} outputs; a sky classifier has one of each"
            )
        self.input, self.output = inputs[0], outputs[0]
        shape = [int(v) for v in self.input["shape"]]
        if shape != [1, INPUT_SIZE, INPUT_SIZE, 3]:
            raise ClassifierError(
                f"{model_path} takes input shape {shape}; a sky classifier takes [1, {INPUT_SIZE}, {INPUT_SIZE}, 3] "
                "(one 224 x 224 RGB image)"
            )
        self.quantised = self.input["dtype"] == np.uint8
        if self.input["dtype"] not in (np.float32, np.uint8):
            raise ClassifierError(
                f"{model_path} takes {np.dtype(self.input['dtype']).name} input; float32 or uint8 expected"
            )
        out_shape = [int(v) for v in self.output["shape"]]
        if len(out_shape) != 2 or out_shape[0] != 1 or out_shape[1] != len(self.labels):
            raise ClassifierError(
                f"{model_path} gives output shape {out_shape} but {labels_path} names {len(self.labels)} classes"
            )

    def classify(self, image: np.ndarray) -> Classification:
        tensor = small_rgb8(image)[None, ...] if self.quantised else model_input(image)
        self.interpreter.set_tensor(self.input["index"], tensor)
        self.interpreter.invoke()
        scores = self.interpreter.get_tensor(self.output["index"])[0].astype(float)
        if self.output["dtype"] == np.uint8:
            scale, zero = self.output.get("quantization", (1 / 255, 0))
            scores = (scores - zero) * (scale or 1 / 255)
        best = int(np.argmax(scores))
        return Classification(
            self.labels[best], float(scores[best]), {k: float(v) for k, v in zip(self.labels, scores, strict=True)}
        )
