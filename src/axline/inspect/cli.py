"""Command-line front ends: ``axline train inspector`` and ``axline inspect``.

``axline.cli`` wires the sub-commands to these functions; each ``run_*`` returns an exit
code (0 success, 1 bad arguments or model, 2 some images could not be read).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from axline import i18n
from axline.inspect.inferencer import (
    ImageError,
    Inspector,
    default_threads,
    list_images,
    save_heatmap_overlay,
)
from axline.inspect.model import ModelFileError


def _roi(text: str) -> tuple[int, int, int, int]:
    parts = text.split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 0:
        raise argparse.ArgumentTypeError(f"--roi must be X,Y,WIDTH,HEIGHT in pixels (e.g. 10,20,200,150), got {text!r}")
    return values  # type: ignore[return-value]


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``axline train inspector``."""
    parser.add_argument("--images", nargs="+", required=True, metavar="DIR_OR_FILE",
                        help="images of good parts (folders or files)")
    parser.add_argument("--out", required=True, help="model file to write, e.g. model.axi")
    parser.add_argument("--defects", nargs="*", default=[], metavar="DIR_OR_FILE",
                        help="optional labelled defect images that refine the threshold")
    parser.add_argument("--coreset-ratio", type=float, default=0.05, help="fraction of patches kept (0..1]")
    parser.add_argument("--max-bank", type=int, default=8000, help="most patches in the memory bank")
    parser.add_argument("--target-frr", type=float, default=0.01, help="target false-reject rate [0, 0.5)")
    parser.add_argument("--holdout", type=float, default=0.2, help="fraction of good images kept to calibrate")
    parser.add_argument("--roi", type=_roi, default=None, help="region of interest X,Y,WIDTH,HEIGHT")
    parser.add_argument("--size", type=int, default=256, help="input side in pixels (multiple of 16)")
    parser.add_argument("--normalize-brightness", action=argparse.BooleanOptionalAction, default=True,
                        help="rescale each image to a fixed brightness and contrast (on by default: it separated "
                             "held-out goods from synthetic defects better)")
    parser.add_argument("--scorer", choices=("auto", "gaussian", "nn", "combined"), default="auto",
                        help="patch scorer: auto (default: chosen on held-out goods with synthetic defects), "
                             "gaussian (per position), nn (memory bank) or combined")
    parser.add_argument("--backbone", choices=("lite0", "lite1", "lite2"), default="lite2",
                        help="ImageNet EfficientNet-Lite variant for the patch features: lite0 (fastest), "
                             "lite1 (deeper) or lite2 (deeper and wider; default, best on validation)")
    parser.add_argument("--smallest-defect-px", type=float, default=None,
                        help="inspect at native aspect, tiled, at a scale where a defect this many image "
                             "pixels across is seen")
    parser.add_argument("--smallest-defect-mm", type=float, default=None,
                        help="the same in mm (needs --mm-per-px, the camera calibration)")
    parser.add_argument("--mm-per-px", type=float, default=None, help="camera calibration: mm per image pixel")
    parser.add_argument("--tile-overlap", type=int, default=None,
                        help="pixels shared by neighbouring tiles (default: a quarter of a tile or none, "
                             "whichever separates held-out goods from synthetic defects better)")
    parser.add_argument("--ignore", type=_roi, action="append", default=[], metavar="X,Y,WIDTH,HEIGHT",
                        help="a rectangle never to count (edges, labels, holes); repeat for more")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run_train(args: argparse.Namespace) -> int:
    """Train and write the model; print a short report."""
    from axline.inspect.train import train_inspector

    images = list_images(args.images)
    defects = list_images(args.defects) if args.defects else []
    if not images:
        print(i18n.say("inspect.cli.no_images_train", where=" ".join(args.images)), file=sys.stderr)
        return 1
    try:
        report = train_inspector(
            images, args.out, coreset_ratio=args.coreset_ratio, max_bank=args.max_bank,
            target_frr=args.target_frr, holdout=args.holdout, roi=args.roi, defect_images=defects,
            size=args.size, normalize_brightness=args.normalize_brightness, seed=args.seed,
            progress=not args.no_progress, scorer=args.scorer, smallest_defect_px=args.smallest_defect_px,
            smallest_defect_mm=args.smallest_defect_mm, mm_per_px=args.mm_per_px,
            tile_overlap=args.tile_overlap, ignore=args.ignore, backbone=args.backbone,
        )
    except (ValueError, RuntimeError) as exc:
        print(i18n.say("cli.error", error=exc), file=sys.stderr)
        return 1
    print(i18n.say("inspect.cli.trained", model=report["model"], images=report["n_images"], scorer=report["scorer"],
                   tiles=report["tiles"], width=report["canvas"][0], height=report["canvas"][1],
                   bank=report["bank_size"], threshold=f"{report['threshold']:.4f}",
                   frr=f"{report['holdout_false_reject_rate']:.3f}", seconds=f"{report['train_seconds']:.1f}"))
    return 0


def add_inspect_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``axline inspect``."""
    parser.add_argument("model", help="trained model file (.axi)")
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_DIR", help="images or folders of images")
    parser.add_argument("--heatmap", metavar="OUT_DIR", default=None, help="write heat-map overlays (PNG) here")
    parser.add_argument("--json", action="store_true", help="one JSON line per image: path, score, verdict")
    parser.add_argument("--threads", type=int, default=None, help="inference threads (default 2)")


def run_inspect(args: argparse.Namespace) -> int:
    """Inspect images; print one line (or JSON line) per image."""
    try:
        inspector = Inspector.load(args.model, threads=args.threads or default_threads())
    except (ModelFileError, ValueError) as exc:
        print(i18n.say("cli.error", error=exc), file=sys.stderr)
        return 1
    paths = list_images(args.inputs)
    if not paths:
        print(i18n.say("inspect.cli.no_images", where=" ".join(args.inputs)), file=sys.stderr)
        return 2
    failures = 0
    heat_dir = Path(args.heatmap) if args.heatmap else None
    for path, verdict, error in inspector.inspect_many(paths):
        if verdict is None:
            failures += 1
            if args.json:
                print(json.dumps({"path": path, "error": error}, ensure_ascii=False))
            else:
                print(f"{path}\terror\t{error}", file=sys.stderr)
            continue
        heat_path = None
        if heat_dir is not None:
            try:
                heat_path = save_heatmap_overlay(path, verdict.anomaly_map, heat_dir / (Path(path).stem + "_heat.png"),
                                                 threshold=verdict.threshold)
            except (ImageError, OSError) as exc:
                print(i18n.say("inspect.cli.heatmap_failed", path=path, error=exc), file=sys.stderr)
        if args.json:
            line = {"path": path, "score": round(verdict.score, 6), "verdict": verdict.verdict}
            if heat_path is not None:
                line["heatmap"] = str(heat_path)
            print(json.dumps(line, ensure_ascii=False))
        else:
            print(f"{path}\t{verdict.verdict}\t{verdict.score:.4f} (threshold {verdict.threshold:.4f})")
    return 2 if failures else 0
