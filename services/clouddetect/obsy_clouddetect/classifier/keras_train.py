"""Training a small CNN with Keras and converting Keras models to TFLite (needs tensorflow-cpu:
``pip install 'obsy-clouddetect[train]'``). Inputs follow the mlCloudDetect convention:
224 x 224 RGB scaled to [-1, 1] (:func:`obsy_clouddetect.classifier.runtime.model_input`)."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from obsy_clouddetect.classifier.runtime import INPUT_SIZE, model_input


def _tensorflow():
    try:
        import tensorflow as tf
    except ImportError:
        raise SystemExit(
            "the keras backend needs TensorFlow: pip install 'obsy-clouddetect[train]' (tensorflow-cpu)"
        ) from None
    return tf


def train_and_export(images_by_label: dict[str, Sequence[np.ndarray]], out: Path, epochs: int | None = None) -> Path:
    tf = _tensorflow()
    labels = sorted(images_by_label)
    x = np.concatenate([model_input(img) for label in labels for img in images_by_label[label]])
    y = np.array([i for i, label in enumerate(labels) for _ in images_by_label[label]])
    layers = tf.keras.layers
    model = tf.keras.Sequential(
        [
            layers.Input((INPUT_SIZE, INPUT_SIZE, 3)),
            layers.AveragePooling2D(4),
            layers.Conv2D(16, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 3, activation="relu"),
            layers.MaxPooling2D(2),
            layers.Conv2D(32, 3, activation="relu"),
            layers.GlobalAveragePooling2D(),
            layers.Dense(len(labels), activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=epochs or 30, batch_size=16, verbose=2)
    return _export(tf, model, Path(out), labels)


def convert_h5(h5: Path, out: Path, labels: Path | None = None) -> Path:
    tf = _tensorflow()
    model = tf.keras.models.load_model(h5, compile=False)
    path = _export(tf, model, Path(out), None)
    if labels is not None:
        shutil.copyfile(labels, path.with_name("labels.txt"))
    return path


def _export(tf, model, out: Path, labels: list[str] | None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "model.tflite"
    path.write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    if labels is not None:
        (out / "labels.txt").write_text("".join(f"{i} {label}\n" for i, label in enumerate(labels)))
    return path
