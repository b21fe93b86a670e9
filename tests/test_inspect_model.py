"""Visual inspection: training, export, torch-free inference, errors, feedback and CLI."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from axline.inspect.cli import add_inspect_arguments, run_inspect
from axline.inspect.inferencer import (
    ImageError,
    Inspector,
    NearestNeighbourScorer,
    anomaly_map,
    bilinear_matrix,
    load_image,
    preprocess,
    save_heatmap_overlay,
)
from axline.inspect.model import InspectorModel, ModelFileError
from axline.inspect.train import calibrate_threshold, greedy_coreset, train_inspector, update_with_feedback

SIZE = 64
SCRATCH = (slice(28, 32), slice(10, 54))  # rows, cols of the drawn scratch


def texture(seed: int, size: int = SIZE) -> np.ndarray:
    """A grey tile-like texture: diagonal stripes with a random phase plus fine noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    phase = rng.uniform(0, 2 * np.pi)
    img = 120 + 25 * np.sin((xx + yy) / 3.0 + phase) + rng.normal(0, 4, (size, size))
    return np.clip(img, 0, 255).astype(np.uint8)


def scratched(seed: int) -> np.ndarray:
    img = texture(seed).copy()
    img[SCRATCH] = 250
    return img


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, list[Path]]:
    folder = tmp_path_factory.mktemp("good")
    paths = []
    for i in range(16):
        p = folder / f"good_{i:02d}.png"
        Image.fromarray(texture(i)).save(p)
        paths.append(p)
    out = folder / "model.axi"
    # the memory-bank scorer: the torch reference and the bank feedback below are about it
    report = train_inspector(paths, out, size=SIZE, coreset_ratio=0.25, holdout=0.25, target_frr=0.0,
                             progress=False, scorer="nn")
    return out, report, paths


def test_training_writes_one_verified_file(trained: tuple[Path, dict, list[Path]]) -> None:
    out, report, paths = trained
    assert out.is_file() and report["model"] == str(out)
    with zipfile.ZipFile(out) as zf:
        assert set(zf.namelist()) == {"meta.json", "backbone.onnx", "bank.npy", "health.json"}
        meta = json.loads(zf.read("meta.json"))
    assert meta["format"] == "axline-inspector" and meta["version"] == 2
    assert meta["score"]["scorer"] == "nn"
    assert meta["preprocessing"]["size"] == SIZE and meta["preprocessing"]["color"] == "grey"
    assert len(meta["info"]["training_images_sha256"]) == 64
    model = InspectorModel.load(out)
    assert model.bank.shape == (report["bank_size"], report["feature_dim"])
    assert report["n_holdout_images"] == 4 and len(model.good_scores) == 4
    # the calibrated threshold rejects no held-out good image at target FRR 0
    assert max(model.good_scores) <= model.threshold
    assert report["holdout_false_reject_rate"] == 0.0


def test_onnx_path_equals_torch_path(trained: tuple[Path, dict, list[Path]]) -> None:
    from _torch_reference import require

    require("torch")
    from _torch_reference import build_feature_extractor, torch_image_scores

    out, _, _ = trained
    inspector = Inspector.load(out)
    images = [texture(100), scratched(101), texture(102)]
    batch = np.stack([preprocess(im, inspector.prep) for im in images])
    from axline.inspect.features import BACKBONES, INSPECTOR_BACKBONE

    # the inspector was trained on the default variant with its default blocks
    module = build_feature_extractor(SIZE, BACKBONES[INSPECTOR_BACKBONE].default_blocks, backbone=INSPECTOR_BACKBONE)
    ref_patches, ref_scores = torch_image_scores(module, inspector.model, batch)
    got = np.stack([inspector.patch_scores(f)[0] for f in inspector.features(batch)])
    np.testing.assert_allclose(got, ref_patches, atol=1e-4, rtol=0)
    scores = [inspector.inspect(im).score for im in images]
    np.testing.assert_allclose(scores, ref_scores, atol=1e-4, rtol=0)
    assert inspector.model.position_scale is not None and inspector.model.top_k >= 1


def test_defect_scores_above_goods_and_heatmap_peaks_at_it(trained: tuple[Path, dict, list[Path]]) -> None:
    out, _, _ = trained
    inspector = Inspector.load(out)
    goods = [inspector.inspect(texture(200 + i)) for i in range(4)]
    bad = inspector.inspect(scratched(300))
    assert bad.score > max(g.score for g in goods)
    assert bad.verdict == "reject" and bad.rejected
    assert bad.label("ko") == "불량" and goods[0].label("en") == goods[0].verdict
    assert bad.anomaly_map.shape == (SIZE, SIZE) and bad.anomaly_map.dtype == np.float32
    row, col = np.unravel_index(np.argmax(bad.anomaly_map), bad.anomaly_map.shape)
    assert 28 - 6 <= row <= 31 + 6 and 10 - 6 <= col <= 53 + 6
    # the map is higher on the scratch than far away from it
    assert bad.anomaly_map[SCRATCH].mean() > bad.anomaly_map[:10, :].max()


def test_inference_runs_without_torch(trained: tuple[Path, dict, list[Path]], tmp_path: Path) -> None:
    out, _, _ = trained
    img_path = tmp_path / "bad.png"
    Image.fromarray(scratched(400)).save(img_path)
    code = (
        "import sys, json\n"
        "sys.modules['torch'] = None\n"
        "from axline.inspect.inferencer import Inspector\n"
        f"v = Inspector.load({str(out)!r}).inspect({str(img_path)!r})\n"
        "assert 'torch' not in sys.modules or sys.modules['torch'] is None\n"
        "print(json.dumps({'score': v.score, 'verdict': v.verdict}))\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout.strip().splitlines()[-1])
    local = Inspector.load(out).inspect(img_path)
    assert data["verdict"] == local.verdict == "reject"
    assert abs(data["score"] - local.score) < 1e-5


def test_corrupt_image_gives_clear_error_and_batch_continues(
    trained: tuple[Path, dict, list[Path]], tmp_path: Path
) -> None:
    out, _, paths = trained
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    with pytest.raises(ImageError, match="broken.png"):
        load_image(broken)
    with pytest.raises(ImageError, match="no such image"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(ImageError, match="at least 8x8"):
        load_image(np.zeros((4, 4), np.uint8))
    results = list(Inspector.load(out).inspect_many([broken, paths[0]]))
    assert results[0][1] is None and "broken.png" in results[0][2]
    assert results[1][1] is not None and results[1][2] is None


def test_corrupt_or_foreign_model_files_give_clear_errors(
    trained: tuple[Path, dict, list[Path]], tmp_path: Path
) -> None:
    out, _, _ = trained
    garbage = tmp_path / "garbage.axi"
    garbage.write_bytes(b"not a zip at all" * 10)
    with pytest.raises(ModelFileError, match=r"garbage.axi is not an axline inspector model \(bad zip\).*retrain"):
        InspectorModel.load(garbage)
    truncated = tmp_path / "truncated.axi"
    truncated.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    with pytest.raises(ModelFileError, match="truncated.axi"):
        InspectorModel.load(truncated)
    foreign = tmp_path / "foreign.axi"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("hello.txt", "hi")
    with pytest.raises(ModelFileError, match="missing meta.json"):
        InspectorModel.load(foreign)
    tampered = tmp_path / "tampered.axi"
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(tampered, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "bank.npy":
                data = data[:-4] + b"\x00\x00\x80\x7f"
            dst.writestr(name, data)
    with pytest.raises(ModelFileError, match="bank.npy fails its checksum"):
        InspectorModel.load(tampered)
    with pytest.raises(ModelFileError, match="no such model file"):
        InspectorModel.load(tmp_path / "absent.axi")


def test_feedback_turns_false_reject_into_pass_without_retraining(
    trained: tuple[Path, dict, list[Path]], tmp_path: Path
) -> None:
    out, _, _ = trained
    model = InspectorModel.load(out)
    # an acceptable variant the model has never seen: stripes in the other direction
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    variant = np.clip(120 + 25 * np.sin((xx - yy) / 3.0), 0, 255).astype(np.uint8)
    before = Inspector(model).inspect(variant)
    assert before.verdict == "reject"
    defect = scratched(500)
    updated, stats = update_with_feedback(model, good_images=[variant], defect_images=[defect],
                                          out=tmp_path / "updated.axi")
    assert updated.backbone_onnx == model.backbone_onnx  # no retraining of the backbone
    assert stats["bank_after"] > stats["bank_before"] == len(model.bank)
    np.testing.assert_array_equal(updated.bank[: len(model.bank)], model.bank)
    after = Inspector(InspectorModel.load(tmp_path / "updated.axi")).inspect(variant)
    assert after.verdict == "pass" and after.score < before.score
    assert stats["good_scores_before"][0] == pytest.approx(before.score, abs=1e-5)
    assert len(updated.defect_scores) == len(model.defect_scores) + 1
    # the confirmed defect is still rejected by the refined threshold
    assert Inspector(updated).inspect(defect).verdict == "reject"
    assert updated.info["feedback_updates"] == 1


def test_calibration_meets_target_frr_and_defects_refine_it() -> None:
    rng = np.random.default_rng(0)
    goods = rng.normal(1.0, 0.1, 200)
    for target in (0.0, 0.01, 0.05, 0.2):
        t = calibrate_threshold(goods, target)
        frr = np.mean(goods > t)
        assert frr <= target + 1e-12
        # the threshold is the smallest that meets the target: one order statistic lower breaks it
        lower = np.sort(goods)[np.searchsorted(np.sort(goods), t) - 1]
        assert np.mean(goods > lower) > target
    t0 = calibrate_threshold(goods, 0.01)
    defects = np.array([t0 + 0.5, t0 + 0.7, t0 - 0.3])
    t1 = calibrate_threshold(goods, 0.01, defects)
    assert t1 == pytest.approx((t0 + t0 + 0.5) / 2)
    assert np.mean(defects > t1) == np.mean(defects > t0)  # same defects caught
    assert np.mean(goods > t1) <= np.mean(goods > t0)
    with pytest.raises(ValueError, match="target_frr"):
        calibrate_threshold(goods, 1.5)
    with pytest.raises(ValueError, match="good_scores"):
        calibrate_threshold([], 0.01)


def test_greedy_coreset_covers_every_cluster() -> None:
    rng = np.random.default_rng(1)
    centers = rng.normal(0, 50, (6, 16))
    sizes = [500, 300, 100, 20, 5, 2]
    points = np.concatenate([c + rng.normal(0, 0.5, (n, 16)) for c, n in zip(centers, sizes, strict=True)])
    labels = np.repeat(np.arange(6), sizes)
    chosen = greedy_coreset(points.astype(np.float32), 6, projection_dim=8)
    assert sorted(labels[chosen]) == list(range(6))
    several = greedy_coreset(points.astype(np.float32), 40, projection_dim=8, per_step=4)
    assert len(set(several.tolist())) == 40 and set(labels[several]) == set(range(6))
    with pytest.raises(ValueError, match="size must be between 1"):
        greedy_coreset(points, 0)


def test_nearest_neighbour_scorer_is_exact() -> None:
    rng = np.random.default_rng(2)
    bank = rng.normal(0, 1, (300, 12)).astype(np.float32)
    queries = rng.normal(0, 1, (50, 12)).astype(np.float32)
    scorer = NearestNeighbourScorer(bank, chunk=64)
    ref = np.sqrt(((queries[:, None, :].astype(np.float64) - bank[None]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(scorer.distances(queries), ref, atol=1e-4)
    assert scorer.distances(bank[:5]).max() < 1e-2
    with pytest.raises(ValueError, match="queries must be"):
        scorer.distances(queries[:, :5])


def test_bilinear_matrix_matches_torch_and_map_is_smooth() -> None:
    import torch

    rng = np.random.default_rng(3)
    small = rng.random((8, 6)).astype(np.float32)
    ref = torch.nn.functional.interpolate(torch.from_numpy(small)[None, None], size=(40, 30), mode="bilinear",
                                          align_corners=False)[0, 0].numpy()
    got = bilinear_matrix(40, 8) @ small @ bilinear_matrix(30, 6).T
    np.testing.assert_allclose(got, ref, atol=1e-5)
    m = anomaly_map(small, 40, 30, sigma_px=3.0)
    assert m.shape == (40, 30)
    assert np.abs(np.diff(m, axis=0)).max() < np.abs(np.diff(got, axis=0)).max()


def test_colour_images_roi_and_overlay(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    goods = []
    for i in range(6):
        img = np.stack([texture(i, 80), texture(i + 50, 80), np.full((80, 80), 60, np.uint8)], axis=-1)
        img[:, :, 2] = np.clip(img[:, :, 2] + rng.integers(0, 5, (80, 80)), 0, 255)
        goods.append(img)
    out = tmp_path / "colour.axi"
    roi = (8, 8, 64, 64)
    train_inspector(goods, out, size=SIZE, roi=roi, coreset_ratio=0.5, holdout=0.34, progress=False)
    inspector = Inspector.load(out)
    assert inspector.prep.color == "rgb" and inspector.prep.roi == roi
    bad = goods[0].copy()
    bad[30:34, 20:60] = (255, 0, 255)
    v = inspector.inspect(bad)
    assert v.anomaly_map.shape == (80, 80)
    assert v.anomaly_map[:8].max() == 0.0 and v.anomaly_map[:, 72:].max() == 0.0  # outside the ROI
    assert v.score > inspector.inspect(goods[1]).score
    with pytest.raises(ImageError, match="region of interest"):
        inspector.inspect(np.zeros((40, 40, 3), np.uint8))
    png = save_heatmap_overlay(bad, v.anomaly_map, tmp_path / "heat" / "bad.png", threshold=v.threshold)
    overlay = np.asarray(Image.open(png))
    assert overlay.shape == (80, 80, 3)
    # red dominates on the defect, blue where nothing is wrong
    assert overlay[31, 40, 0] > overlay[31, 40, 2]
    assert overlay[76, 76, 2] > overlay[76, 76, 0]


def test_training_rejects_bad_parameters(tmp_path: Path) -> None:
    goods = [texture(i) for i in range(4)]
    with pytest.raises(ValueError, match="coreset_ratio"):
        train_inspector(goods, tmp_path / "m.axi", coreset_ratio=0.0, size=SIZE, progress=False)
    with pytest.raises(ValueError, match="at least 3 good images"):
        train_inspector(goods[:2], tmp_path / "m.axi", size=SIZE, progress=False)
    with pytest.raises(ValueError, match="size must be a multiple of 16"):
        train_inspector(goods, tmp_path / "m.axi", size=70, progress=False)


def test_cli_prints_one_json_line_per_image_and_writes_heatmaps(
    trained: tuple[Path, dict, list[Path]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _, paths = trained
    folder = tmp_path / "incoming"
    folder.mkdir()
    Image.fromarray(scratched(600)).save(folder / "a_bad.png")
    Image.fromarray(texture(601)).save(folder / "b_good.png")
    (folder / "c_broken.jpg").write_bytes(b"garbage")
    parser = argparse.ArgumentParser()
    add_inspect_arguments(parser)
    args = parser.parse_args([str(out), str(folder), "--json", "--heatmap", str(tmp_path / "heat")])
    code = run_inspect(args)
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert code == 2  # one image could not be read
    assert [Path(x["path"]).name for x in lines] == ["a_bad.png", "b_good.png", "c_broken.jpg"]
    assert lines[0]["verdict"] == "reject" and lines[1]["verdict"] == "pass"
    assert lines[0]["score"] > lines[1]["score"]
    assert "c_broken.jpg" in lines[2]["error"]
    assert (tmp_path / "heat" / "a_bad_heat.png").is_file()
    bad_model = tmp_path / "bad.axi"
    bad_model.write_bytes(b"junk")
    assert run_inspect(parser.parse_args([str(bad_model), str(folder)])) == 1
    assert "bad zip" in capsys.readouterr().err


def test_train_cli_writes_a_model_and_reports_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from axline.inspect.cli import add_train_arguments, run_train

    folder = tmp_path / "goods"
    folder.mkdir()
    for i in range(5):
        Image.fromarray(texture(700 + i)).save(folder / f"g{i}.png")
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    out = tmp_path / "cli.axi"
    args = parser.parse_args(["--images", str(folder), "--out", str(out), "--size", str(SIZE), "--no-progress"])
    assert run_train(args) == 0
    assert "wrote" in capsys.readouterr().out and InspectorModel.load(out).preprocessing.size == SIZE
    empty = tmp_path / "empty"
    empty.mkdir()
    assert run_train(parser.parse_args(["--images", str(empty), "--out", str(out)])) == 1
    assert "no images found" in capsys.readouterr().err
    assert run_train(parser.parse_args(["--images", str(folder), "--out", str(out), "--target-frr", "0.7"])) == 1
    assert "target_frr" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["--images", str(folder), "--out", str(out), "--roi", "1,2,3"])
