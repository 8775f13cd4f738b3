"""A small sky classifier that trains in seconds with NumPy and exports a real .tflite file.

The network: the 224 x 224 RGB input in [-1, 1] is averaged over a grid of 28 x 28 pixel
cells (an 8 x 8 x 3 picture of where the sky is bright and what colour), flattened, and a
fully connected layer with softmax gives the class scores: multinomial logistic regression
on a coarse image. It is enough to tell a starry black sky from a grey overcast one, and it
needs no TensorFlow; :mod:`obsy_clouddetect.classifier.keras` trains a real CNN where
tensorflow-cpu is installed. The model file is written with the TFLite flatbuffer schema
(the ``tflite`` package's generated builders), so the same runtime runs either model.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import flatbuffers
import numpy as np
import tflite

from obsy_clouddetect.classifier.runtime import INPUT_SIZE, model_input

GRID = 8
CELL = INPUT_SIZE // GRID
FEATURES = GRID * GRID * 3


def pooled_features(tensors: np.ndarray) -> np.ndarray:
    """What the model's pooling layer computes: [n, 224, 224, 3] -> [n, 192] cell means."""
    n = tensors.shape[0]
    return tensors.reshape(n, GRID, CELL, GRID, CELL, 3).mean(axis=(2, 4)).reshape(n, FEATURES)


def train(
    images_by_label: dict[str, Sequence[np.ndarray]], epochs: int = 400, learning_rate: float = 0.5, l2: float = 1e-3
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Softmax regression on pooled features; returns (labels, weights [classes, 192], bias)."""
    labels = sorted(images_by_label)
    if len(labels) < 2:
        raise ValueError(f"training needs at least two classes, got {labels}")
    features, targets = [], []
    for index, label in enumerate(labels):
        images = images_by_label[label]
        if not images:
            raise ValueError(f"class {label!r} has no images")
        features.append(pooled_features(np.concatenate([model_input(image) for image in images])))
        targets.extend([index] * len(images))
    x = np.concatenate(features).astype(np.float64)
    y = np.eye(len(labels))[np.array(targets)]
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-3
    z = (x - mean) / std
    weights = np.zeros((FEATURES, len(labels)))
    bias = np.zeros(len(labels))
    for _ in range(epochs):
        logits = z @ weights + bias
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        grad = (p - y) / len(z)
        weights -= learning_rate * (z.T @ grad + l2 * weights)
        bias -= learning_rate * grad.sum(axis=0)
    # Fold the standardisation into the layer: w.(x - m)/s + b = (w/s).x + (b - w.m/s).
    folded = weights / std[:, None]
    return labels, folded.T.astype(np.float32), (bias - mean @ folded).astype(np.float32)


def _vector(b: flatbuffers.Builder, start, values, add) -> int:
    start(b, len(values))
    for value in reversed(values):
        add(value)
    return b.EndVector()


def _buffer(b: flatbuffers.Builder, data: bytes | None) -> int:
    offset = b.CreateByteVector(data) if data is not None else None
    tflite.BufferStart(b)
    if offset is not None:
        tflite.BufferAddData(b, offset)
    return tflite.BufferEnd(b)


def _tensors(b: flatbuffers.Builder, specs: list[tuple[str, list[int], int, int]]) -> list[int]:
    tensors = []
    for name, shape, dtype, buf in specs:
        name_offset = b.CreateString(name)
        shape_offset = _vector(b, tflite.TensorStartShapeVector, shape, b.PrependInt32)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape_offset)
        tflite.TensorAddType(b, dtype)
        tflite.TensorAddBuffer(b, buf)
        tflite.TensorAddName(b, name_offset)
        tensors.append(tflite.TensorEnd(b))
    return tensors


def _options(b: flatbuffers.Builder, features: int) -> list[tuple[int, int]]:
    """(options type, offset) of the four operators, in graph order."""
    tflite.Pool2DOptionsStart(b)
    tflite.Pool2DOptionsAddPadding(b, tflite.Padding.VALID)
    tflite.Pool2DOptionsAddStrideW(b, CELL)
    tflite.Pool2DOptionsAddStrideH(b, CELL)
    tflite.Pool2DOptionsAddFilterWidth(b, CELL)
    tflite.Pool2DOptionsAddFilterHeight(b, CELL)
    pool = tflite.Pool2DOptionsEnd(b)
    new_shape = _vector(b, tflite.ReshapeOptionsStartNewShapeVector, [1, features], b.PrependInt32)
    tflite.ReshapeOptionsStart(b)
    tflite.ReshapeOptionsAddNewShape(b, new_shape)
    reshape = tflite.ReshapeOptionsEnd(b)
    tflite.FullyConnectedOptionsStart(b)
    dense = tflite.FullyConnectedOptionsEnd(b)
    tflite.SoftmaxOptionsStart(b)
    tflite.SoftmaxOptionsAddBeta(b, 1.0)
    softmax = tflite.SoftmaxOptionsEnd(b)
    kinds = tflite.BuiltinOptions
    return [
        (kinds.Pool2DOptions, pool),
        (kinds.ReshapeOptions, reshape),
        (kinds.FullyConnectedOptions, dense),
        (kinds.SoftmaxOptions, softmax),
    ]


def _operators(
    b: flatbuffers.Builder, features: int, wiring: list[tuple[list[int], list[int]]]
) -> tuple[list[int], list[int]]:
    """Operator codes and operators for pool, reshape, dense and softmax wired as given."""
    ops = tflite.BuiltinOperator
    codes = []
    for code in (ops.AVERAGE_POOL_2D, ops.RESHAPE, ops.FULLY_CONNECTED, ops.SOFTMAX):
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, min(code, 127))
        tflite.OperatorCodeAddBuiltinCode(b, code)
        tflite.OperatorCodeAddVersion(b, 1)
        codes.append(tflite.OperatorCodeEnd(b))
    operators = []
    for index, ((inputs, outputs), (options_type, options)) in enumerate(
        zip(wiring, _options(b, features), strict=True)
    ):
        in_offset = _vector(b, tflite.OperatorStartInputsVector, inputs, b.PrependInt32)
        out_offset = _vector(b, tflite.OperatorStartOutputsVector, outputs, b.PrependInt32)
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, index)
        tflite.OperatorAddInputs(b, in_offset)
        tflite.OperatorAddOutputs(b, out_offset)
        tflite.OperatorAddBuiltinOptionsType(b, options_type)
        tflite.OperatorAddBuiltinOptions(b, options)
        operators.append(tflite.OperatorEnd(b))
    return codes, operators


def write_tflite(path: Path, weights: np.ndarray, bias: np.ndarray, input_size: int = INPUT_SIZE) -> None:
    """AVERAGE_POOL_2D -> RESHAPE -> FULLY_CONNECTED -> SOFTMAX, float32, input [1, size, size, 3].

    Sizes other than 224 make models the service must refuse (tests of that check).
    """
    classes = weights.shape[0]
    grid = input_size // CELL
    features = grid * grid * 3
    if weights.shape != (classes, features) or bias.shape != (classes,):
        raise ValueError(f"weights must be [classes, {features}] and bias [classes]")
    b = flatbuffers.Builder(4096)
    buffers = [
        _buffer(b, None),  # buffer 0 is always empty
        _buffer(b, np.array([1, features], dtype=np.int32).tobytes()),
        _buffer(b, weights.astype("<f4").tobytes()),
        _buffer(b, bias.astype("<f4").tobytes()),
    ]
    f32, i32 = tflite.TensorType.FLOAT32, tflite.TensorType.INT32
    tensors = _tensors(
        b,
        [
            ("input", [1, input_size, input_size, 3], f32, 0),
            ("pooled", [1, grid, grid, 3], f32, 0),
            ("shape", [2], i32, 1),
            ("flat", [1, features], f32, 0),
            ("weights", [classes, features], f32, 2),
            ("bias", [classes], f32, 3),
            ("logits", [1, classes], f32, 0),
            ("scores", [1, classes], f32, 0),
        ],
    )
    codes, operators = _operators(b, features, [([0], [1]), ([1, 2], [3]), ([3, 4, 5], [6]), ([6], [7])])
    offset = b.PrependUOffsetTRelative
    tensors_vec = _vector(b, tflite.SubGraphStartTensorsVector, tensors, offset)
    inputs_vec = _vector(b, tflite.SubGraphStartInputsVector, [0], b.PrependInt32)
    outputs_vec = _vector(b, tflite.SubGraphStartOutputsVector, [7], b.PrependInt32)
    operators_vec = _vector(b, tflite.SubGraphStartOperatorsVector, operators, offset)
    graph_name = b.CreateString("sky_classifier")
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tensors_vec)
    tflite.SubGraphAddInputs(b, inputs_vec)
    tflite.SubGraphAddOutputs(b, outputs_vec)
    tflite.SubGraphAddOperators(b, operators_vec)
    tflite.SubGraphAddName(b, graph_name)
    subgraph = tflite.SubGraphEnd(b)
    codes_vec = _vector(b, tflite.ModelStartOperatorCodesVector, codes, offset)
    subgraphs_vec = _vector(b, tflite.ModelStartSubgraphsVector, [subgraph], offset)
    buffers_vec = _vector(b, tflite.ModelStartBuffersVector, buffers, offset)
    description = b.CreateString("OBSY pooled-colour sky classifier")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, codes_vec)
    tflite.ModelAddSubgraphs(b, subgraphs_vec)
    tflite.ModelAddDescription(b, description)
    tflite.ModelAddBuffers(b, buffers_vec)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    Path(path).write_bytes(b.Output())


def export(directory: Path, labels: list[str], weights: np.ndarray, bias: np.ndarray) -> Path:
    """Write ``model.tflite`` and ``labels.txt`` (``0 Clear`` lines) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    model = directory / "model.tflite"
    write_tflite(model, weights, bias)
    (directory / "labels.txt").write_text("".join(f"{i} {label}\n" for i, label in enumerate(labels)))
    return model


def train_and_export(images_by_label: dict[str, Sequence[np.ndarray]], out: Path, epochs: int | None = None) -> Path:
    labels, weights, bias = train(images_by_label, epochs=epochs or 400)
    return export(Path(out), labels, weights, bias)
