"""Native-resolution inspection: canvas, overlapping tiles, stitched maps, ignore masks, scorers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from axline.inspect.inferencer import Inspector
from axline.inspect.model import InspectorModel
from axline.inspect.scoring import GaussianStats
from axline.inspect.tiling import plan_canvas, scale_for_defect, stitch, tile_grid, tile_offsets
from axline.inspect.train import train_inspector

W, H = 256, 64  # a long, narrow part


def long_part(seed: int) -> np.ndarray:
    """A grey long part: fine diagonal stripes with a random phase plus noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W]
    img = 120 + 25 * np.sin((xx + yy) / 3.0 + rng.uniform(0, 2 * np.pi)) + rng.normal(0, 4, (H, W))
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiled") / "long.axi"
    goods = [long_part(i) for i in range(30)]
    # a defect 8 px across should be seen: scale 2, canvas 512 x 128, tiles of 64 overlapping by 32
    report = train_inspector(goods, out, size=64, smallest_defect_px=8, tile_overlap=32, holdout=0.25,
                             target_frr=0.0, progress=False, ignore=[(220, 0, 36, 64)])
    assert report["canvas"] == [512, 128] and report["tiles"] == 15 * 3
    return out


def test_tile_offsets_cover_the_canvas_on_the_grid() -> None:
    for length, tile, overlap in ((1024, 256, 64), (512, 128, 64), (272, 256, 32), (256, 256, 0)):
        starts = tile_offsets(length, tile, overlap)
        assert starts[0] == 0 and starts[-1] == length - tile
        assert all(s % 16 == 0 for s in starts)
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:], strict=False))
    assert len(tile_grid((1024, 256), 256, 64)) == 5
    with pytest.raises(ValueError, match="shorter than the tile"):
        tile_offsets(100, 128, 0)


def test_scale_from_the_smallest_defect_in_px_or_mm() -> None:
    assert scale_for_defect(smallest_defect_px=8) == 2.0
    assert scale_for_defect(smallest_defect_px=32) == 0.5
    assert scale_for_defect(smallest_defect_mm=1.0, mm_per_px=0.125) == 2.0  # 8 px
    assert plan_canvas(1000, 250, 0.5, 128) == (496, 128)
    with pytest.raises(ValueError, match="mm_per_px"):
        scale_for_defect(smallest_defect_mm=1.0)


def test_stitch_averages_overlapping_tiles() -> None:
    maps = np.stack([np.full((4, 4), 1.0), np.full((4, 4), 3.0)]).astype(np.float32)
    grid = stitch(maps, [(0, 0), (0, 32)], (96, 64), 16)
    assert grid.shape == (4, 6)
    assert grid[0, 0] == 1.0 and grid[0, 5] == 3.0 and grid[0, 2] == 2.0 and grid[0, 3] == 2.0


def test_a_defect_across_a_tile_border_is_found_and_located(tiled: Path) -> None:
    ins = Inspector.load(tiled)
    assert len(ins.offsets) > 1 and ins.batch >= 1
    goods = [ins.inspect(long_part(100 + i)) for i in range(3)]
    # a blob centred on a tile edge (canvas x = 192, image x = 96) straddles neighbouring tiles
    edges = {x for _, x in ins.offsets} | {x + ins.prep.size for _, x in ins.offsets}
    assert 192 in edges
    border_x = 96
    img = long_part(200)
    img[28:36, border_x - 4:border_x + 4] = 250
    bad = ins.inspect(img)
    assert bad.verdict == "reject" and bad.score > max(g.score for g in goods)
    assert bad.anomaly_map.shape == (H, W) and len(bad.tile_scores) == len(ins.offsets)
    row, col = np.unravel_index(np.argmax(bad.anomaly_map), bad.anomaly_map.shape)
    assert abs(row - 32) <= 8 and abs(col - border_x) <= 8
    # the tiles whose boxes contain the blob are the ones that score highest
    worst = int(np.argmax(bad.tile_scores))
    x, _, w, _ = bad.tile_boxes[worst]
    assert x - 8 <= border_x <= x + w + 8


def test_all_tiles_go_through_the_backbone_in_one_run_with_the_same_result(tiled: Path) -> None:
    from axline.inspect.inferencer import image_score, tile_top_k_means

    ins = Inspector.load(tiled)
    assert ins.batch == len(ins.offsets)  # one backbone run per image by default
    one_by_one = Inspector.load(tiled, batch=1)
    img = long_part(400)
    img[20:30, 40:48] = 40
    a, b = ins.inspect(img), one_by_one.inspect(img)
    assert np.allclose(a.patch_scores, b.patch_scores, rtol=1e-4, atol=1e-4)
    assert a.tile_scores == pytest.approx(b.tile_scores, rel=1e-4, abs=1e-4)
    # the vectorised tile scores equal the per-tile top-k mean
    assert tile_top_k_means(a.patch_scores, 3) == pytest.approx(
        [image_score(t, 3) for t in a.patch_scores], rel=1e-9)


def test_ignored_region_never_counts(tiled: Path) -> None:
    ins = Inspector.load(tiled)
    img = long_part(300)
    img[28:36, 236:244] = 250  # inside the ignored rectangle (x 220..256)
    v = ins.inspect(img)
    assert v.anomaly_map[:, 220:].max() == 0.0
    # the same mark outside it scores far higher
    img2 = long_part(300)
    img2[28:36, 150:158] = 250
    v2 = ins.inspect(img2)
    assert v2.verdict == "reject" and v2.score > 2 * v.score


def test_gaussian_scorer_finds_a_scratch_and_learns_a_false_reject(tmp_path: Path) -> None:
    from axline.inspect.train import update_with_feedback

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:64, 0:64]

    def tex(i: int) -> np.ndarray:
        r = np.random.default_rng(i)
        return np.clip(120 + 25 * np.sin((xx + yy) / 3.0 + r.uniform(0, 6.3)) + r.normal(0, 4, (64, 64)),
                       0, 255).astype(np.uint8)

    out = tmp_path / "g.axi"
    report = train_inspector([tex(i) for i in range(60)], out, size=64, scorer="gaussian", progress=False)
    model = InspectorModel.load(out)
    assert report["scorer"] == "gaussian" and len(model.bank) == 0 and isinstance(model.gaussian, GaussianStats)
    ins = Inspector(model)
    bad = tex(500)
    bad[28:32, 10:54] = 250
    assert ins.inspect(bad).score > max(ins.inspect(tex(400 + i)).score for i in range(4))
    variant = np.clip(120 + 25 * np.sin((xx - yy) / 3.0) + rng.normal(0, 4, (64, 64)), 0, 255).astype(np.uint8)
    before = ins.inspect(variant).score
    updated, stats = update_with_feedback(model, good_images=[variant])
    assert stats["gaussian_count_after"] > stats["gaussian_count_before"]
    assert Inspector(updated).inspect(variant).score < before


def test_auto_scorer_records_its_validation(tiled: Path) -> None:
    model = InspectorModel.load(tiled)
    val = model.info["scorer_validation_auroc"]
    assert set(val) == {"nn", "gaussian", "combined"} and model.scorer == max(val, key=lambda k: (val[k], k == "nn"))


def test_a_gaussian_shared_by_the_tiles_scores_every_tile_against_one_tile_of_statistics() -> None:
    rng = np.random.default_rng(3)
    per_tile = GaussianStats.fit_array(rng.normal(size=(40, 4 * 9, 5)).astype(np.float32))
    shared = GaussianStats(per_tile.count, per_tile.mean[:9], per_tile.cov[:9])
    same = GaussianStats(per_tile.count, np.tile(shared.mean, (4, 1)), np.tile(shared.cov, (4, 1, 1)))
    x = rng.normal(size=(4 * 9, 5)).astype(np.float32)
    np.testing.assert_allclose(shared.tile_distances(x, 4), same.tile_distances(x, 4), rtol=1e-5)
    np.testing.assert_allclose(per_tile.tile_distances(x, 4), per_tile.distances(x), rtol=1e-6)
    with pytest.raises(ValueError, match="retrain"):
        shared.tile_distances(x[:27], 3 + 1)


def test_default_tiling_is_chosen_on_validation_and_a_shared_gaussian_learns_feedback(tiled: Path,
                                                                                         tmp_path: Path) -> None:
    from axline.inspect.train import update_with_feedback

    out = tmp_path / "auto.axi"
    report = train_inspector([long_part(i) for i in range(16)], out, size=64, canvas=(256, 64), holdout=0.25,
                             progress=False)
    rows = report["tiling_validation"]
    # a quarter of a tile (16 px, 5 tiles) and abutting (4 tiles), each with a per-tile and a shared Gaussian
    assert {(r["tile_overlap"], r["tiles"]) for r in rows} == {(16, 5), (0, 4)}
    assert {r["gaussian"] for r in rows} == {None, "per tile", "shared by the tiles"}
    best = max(r["auroc"] for r in rows)
    assert any(r["auroc"] == best and r["tile_overlap"] == report["tile_overlap"] and r["scorer"] == report["scorer"]
               for r in rows)
    model = InspectorModel.load(out)
    assert model.preprocessing.tile_overlap == report["tile_overlap"] and len(model.preprocessing.tiles()) == report["tiles"]

    # a Gaussian shared by the tiles: inspection and operator feedback work on its one tile of statistics
    base = InspectorModel.load(tiled)
    feats = [Inspector(base).image_features(long_part(i)) for i in range(8)]  # (T, D, g, g) each
    t, d, gh, gw = feats[0].shape
    p = gh * gw
    shared = GaussianStats.fit_array(np.concatenate([f.transpose(0, 2, 3, 1).reshape(t, p, d) for f in feats]))
    model = InspectorModel(backbone_onnx=base.backbone_onnx, bank=np.zeros((0, base.feature_dim), np.float32),
                           threshold=base.threshold, preprocessing=base.preprocessing, good_scores=base.good_scores,
                           defect_scores=[], target_frr=base.target_frr, info=dict(base.info),
                           scorer="gaussian", gaussian=shared, top_k=base.top_k)
    bad = long_part(301)
    bad[28:36, 150:158] = 250
    ins = Inspector(model)
    assert ins.inspect(bad).score > max(ins.inspect(long_part(400 + i)).score for i in range(3))
    updated, stats = update_with_feedback(model, good_images=[long_part(500)])
    assert stats["gaussian_count_after"] > stats["gaussian_count_before"] and updated.gaussian.positions == p
