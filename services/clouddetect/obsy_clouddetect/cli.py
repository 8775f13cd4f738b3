"""``obsy-clouddetect collect`` and ``obsy-clouddetect train`` (and ``convert``).

collect  saves every Nth allsky frame from the bus into class folders (by the label the
         clouddetect service last published) for a person to sort;
train    learns a classifier from such folders and writes model.tflite and labels.txt:
         ``--backend pooled`` (default, NumPy only) or ``--backend keras`` (a small CNN;
         needs the ``train`` extra, tensorflow-cpu);
convert  turns a Keras .h5 model (e.g. from mlCloudDetect or Teachable Machine) into .tflite.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".fits", ".fit", ".fts")


def load_folders(data: Path) -> dict[str, list[np.ndarray]]:
    """Images by class: every subfolder of ``data`` with at least one image is a class."""
    from obsy_clouddetect.frames import FrameError, decode

    if not data.is_dir():
        raise SystemExit(f"training folder {data} does not exist")
    classes: dict[str, list[np.ndarray]] = {}
    for folder in sorted(p for p in data.iterdir() if p.is_dir()):
        images = []
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                try:
                    images.append(decode(path.read_bytes(), path.name))
                except (FrameError, OSError) as exc:
                    print(f"skipping {path}: {exc}", file=sys.stderr)
        if images:
            classes[folder.name] = images
    if len(classes) < 2:
        raise SystemExit(f"{data} needs at least two class folders with images, found {sorted(classes) or 'none'}")
    return classes


def _split(classes: dict[str, list[np.ndarray]], share: float, seed: int = 0):
    """Hold back ``share`` of every class (at least one image where a class has three or more)."""
    rng = np.random.default_rng(seed)
    train, held = {}, {}
    for label, images in classes.items():
        order = rng.permutation(len(images))
        n_held = round(len(images) * share) if len(images) >= 3 else 0
        held[label] = [images[i] for i in order[:n_held]]
        train[label] = [images[i] for i in order[n_held:]]
    return train, held


def train_command(args: argparse.Namespace) -> int:
    from obsy_clouddetect.classifier.runtime import SkyClassifier

    classes = load_folders(args.data)
    train, held = _split(classes, args.validation)
    if args.backend == "keras":
        from obsy_clouddetect.classifier.keras_train import train_and_export
    else:
        from obsy_clouddetect.classifier.pooled import train_and_export
    model = train_and_export(train, args.out, epochs=args.epochs)
    classifier = SkyClassifier(model)
    for name, subset in (("training", train), ("validation", held)):
        total = sum(len(v) for v in subset.values())
        if total:
            right = sum(classifier.classify(img).label == label for label, imgs in subset.items() for img in imgs)
            print(f"{name} accuracy: {right}/{total} = {right / total:.0%}")
    print(f"wrote {model} and {model.with_name('labels.txt')} ({', '.join(classifier.labels)})")
    return 0


def convert_command(args: argparse.Namespace) -> int:
    from obsy_clouddetect.classifier.keras_train import convert_h5

    model = convert_h5(args.h5, args.out, args.labels)
    print(f"wrote {model}")
    return 0


def collect_command(args: argparse.Namespace) -> int:
    from obsy.bus import Bus
    from obsy.config import ConfigError, load_config
    from obsy.messages import AllskyFrame, CloudState
    from obsy_clouddetect.collect import Collector
    from obsy_clouddetect.frames import read_bytes

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(exc.report("obsy-clouddetect collect"), file=sys.stderr)
        return 2
    out = args.out or config.data_dir / "clouddetect" / "collect"
    collector = Collector(out, args.every)
    label = {"value": "unknown"}
    bus = Bus(config.broker, "clouddetect-collect")
    done = threading.Event()

    def on_state(_topic: str, state: CloudState) -> None:
        label["value"] = state.label

    def on_frame(_topic: str, frame: AllskyFrame) -> None:
        path = collector.offer(
            frame, label["value"], lambda: read_bytes(frame.clean_url or frame.url, config.data_dir, 30)
        )
        if path is not None:
            print(f"saved {path}", flush=True)
        if args.count and collector.saved >= args.count:
            done.set()

    bus.subscribe(bus.topics.clouddetect_state, on_state, CloudState)
    bus.subscribe(bus.topics.allsky_frames, on_frame, AllskyFrame)
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    bus.start(wait=5.0)
    bus.set_online()
    print(f"collecting every {args.every}. frame into {out}", flush=True)
    done.wait()
    bus.stop()
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="obsy-clouddetect", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    collect = sub.add_parser("collect", help="save every Nth allsky frame into class folders")
    collect.add_argument("-c", "--config", help="YAML config file (default: $OBSY_CONFIG, then ./config/obsy.yaml)")
    collect.add_argument("--every", type=int, default=10, help="keep one frame in N (default 10)")
    collect.add_argument("--out", type=Path, help="folder (default: <data_dir>/clouddetect/collect)")
    collect.add_argument("--count", type=int, default=0, help="stop after saving this many (default: run on)")
    train = sub.add_parser("train", help="train a classifier from class folders; writes model.tflite + labels.txt")
    train.add_argument("--data", type=Path, required=True, help="folder with one subfolder of images per class")
    train.add_argument("--out", type=Path, required=True, help="where model.tflite and labels.txt go")
    train.add_argument("--backend", choices=["pooled", "keras"], default="pooled")
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--validation", type=float, default=0.2, help="share of each class held back (default 0.2)")
    convert = sub.add_parser("convert", help="convert a Keras .h5 model to .tflite (needs tensorflow-cpu)")
    convert.add_argument("h5", type=Path)
    convert.add_argument("--out", type=Path, required=True)
    convert.add_argument("--labels", type=Path, help="labels.txt to copy beside the model")
    args = parser.parse_args(argv)
    if args.command == "collect":
        if args.every < 1:
            parser.error("--every must be at least 1")
        return collect_command(args)
    if args.command == "convert":
        return convert_command(args)
    return train_command(args)
