"""The TFLite classifier path: a model trained on generated skies, run through ai-edge-litert."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from obsy_clouddetect.classifier import pooled
from obsy_clouddetect.classifier.demo import generate, make_demo_model
from obsy_clouddetect.classifier.runtime import ClassifierError, SkyClassifier, read_labels
from obsy_clouddetect.cli import main as cli_main


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory) -> Path:
    return make_demo_model(tmp_path_factory.mktemp("model"))


def test_demo_model_is_small_and_tells_generated_skies_apart(demo_model):
    assert demo_model.stat().st_size < 20_000
    classifier = SkyClassifier(demo_model)
    assert classifier.labels == ["Clear", "Cloudy", "Overcast"]
    held_out = generate(per_class=5, seed=99)
    results = {label: [classifier.classify(img) for img in images] for label, images in held_out.items()}
    assert all(r.label == "Clear" for r in results["Clear"])
    assert all(r.label == "Overcast" for r in results["Overcast"])
    right = sum(r.label == label for label, rs in results.items() for r in rs)
    assert right / 15 >= 0.8
    scores = results["Clear"][0].scores
    assert abs(sum(scores.values()) - 1.0) < 1e-4 and results["Clear"][0].confidence == max(scores.values())


def test_classifier_takes_grey_16_bit_and_odd_sized_frames(demo_model):
    classifier = SkyClassifier(demo_model)
    grey16 = (generate(per_class=1, seed=3)["Overcast"][0].astype(np.uint16) * 257)[:200, :300]
    assert classifier.classify(grey16).label == "Overcast"


def test_a_corrupt_model_file_is_refused_at_start(tmp_path, demo_model):
    broken = tmp_path / "model.tflite"
    broken.write_bytes(demo_model.read_bytes()[:300])
    (tmp_path / "labels.txt").write_text("0 Clear\n1 Cloudy\n2 Overcast\n")
    with pytest.raises(ClassifierError, match="not a usable TFLite model"):
        SkyClassifier(broken)
    broken.write_bytes(b"this is not a model at all")
    with pytest.raises(ClassifierError, match="not a usable TFLite model"):
        SkyClassifier(broken)


def test_missing_model_or_labels_are_named(tmp_path):
    with pytest.raises(ClassifierError, match="does not exist"):
        SkyClassifier(tmp_path / "nothing.tflite")
    pooled.write_tflite(tmp_path / "m.tflite", np.zeros((2, pooled.FEATURES), np.float32), np.zeros(2, np.float32))
    with pytest.raises(ClassifierError, match="cannot read labels file"):
        SkyClassifier(tmp_path / "m.tflite")


def test_wrong_input_shape_is_refused_at_start(tmp_path):
    features = (112 // pooled.CELL) ** 2 * 3
    pooled.write_tflite(tmp_path / "model.tflite", np.zeros((2, features), np.float32), np.zeros(2, np.float32), 112)
    (tmp_path / "labels.txt").write_text("Clear\nCloudy\n")
    with pytest.raises(ClassifierError, match=r"input shape \[1, 112, 112, 3\].*\[1, 224, 224, 3\]"):
        SkyClassifier(tmp_path / "model.tflite")


def test_labels_must_match_the_outputs(tmp_path):
    pooled.write_tflite(tmp_path / "model.tflite", np.zeros((3, pooled.FEATURES), np.float32), np.zeros(3, np.float32))
    (tmp_path / "labels.txt").write_text("0 Clear\n1 Cloudy\n")
    with pytest.raises(ClassifierError, match=r"output shape \[1, 3\] but .* names 2 classes"):
        SkyClassifier(tmp_path / "model.tflite")


def test_labels_files_with_and_without_indices(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("0 Clear\n1 Partly Cloudy\n\nOvercast\n")
    assert read_labels(path) == ["Clear", "Partly Cloudy", "Overcast"]
    path.write_text("\n\n")
    with pytest.raises(ClassifierError, match="names no classes"):
        read_labels(path)


def test_train_command_learns_from_class_folders(tmp_path, capsys):
    data = tmp_path / "collect"
    for label, images in generate(per_class=10, seed=5).items():
        (data / label).mkdir(parents=True)
        for i, image in enumerate(images):
            cv2.imwrite(str(data / label / f"{i}.png"), image)
    (data / "Clear" / "broken.png").write_bytes(b"not a png")
    assert cli_main(["train", "--data", str(data), "--out", str(tmp_path / "model")]) == 0
    out = capsys.readouterr()
    assert "validation accuracy:" in out.out
    assert "broken.png" in out.err
    classifier = SkyClassifier(tmp_path / "model" / "model.tflite")
    assert classifier.labels == ["Clear", "Cloudy", "Overcast"]


def test_train_command_needs_two_classes(tmp_path):
    (tmp_path / "Clear").mkdir()
    cv2.imwrite(str(tmp_path / "Clear" / "a.png"), np.zeros((10, 10, 3), np.uint8))
    with pytest.raises(SystemExit, match="at least two class folders"):
        cli_main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "m")])


def test_keras_commands_say_what_is_missing_without_tensorflow(tmp_path):
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("TensorFlow is installed here")
    from obsy_clouddetect.service import main as service_main

    with pytest.raises(SystemExit, match=r"needs TensorFlow: pip install 'obsy-clouddetect\[train\]'"):
        service_main(["convert", str(tmp_path / "model.h5"), "--out", str(tmp_path / "out")])
