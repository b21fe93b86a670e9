"""The torch-free backbone: weights read by the restricted reader, the ONNX graph written by hand.

The graph must compute the same features as the torch model of the ``efficientnet-lite-pytorch``
package with the same weights; torch is needed only here (the ``train`` extra).
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

from _torch_reference import require
from axline.inspect.features import BACKBONES, build_backbone_onnx, same_pads, weights_path
from axline.inspect.inferencer import BackboneRunner, NearestNeighbourScorer
from axline.inspect.torchfile import WeightsFileError, read_state_dict, read_state_dict_bytes


@pytest.fixture(scope="module")
def weights() -> dict[str, np.ndarray]:
    return read_state_dict(weights_path())


@pytest.mark.parametrize(("backbone", "size", "blocks", "feature_dim", "grid"), [
    ("lite0", 64, (4, 10), None, 16),     # the default stages
    ("lite0", 96, (2, 7), 24, 8),         # finer grid, a random projection, another pair of stages
    ("lite0", 64, (10, 14, 15), None, 16),  # the stride-32 stages, upsampled to the grid
    ("lite1", 64, (6, 14), None, 16),     # Lite1's default stages (deeper: 21 blocks)
    ("lite1", 96, (3, 10), 24, 8),
    ("lite1", 64, (14, 19, 20), None, 16),
    ("lite2", 64, (6, 14), None, 16),     # Lite2's default stages (deeper and wider)
    ("lite2", 96, (3, 10), 24, 8),
    ("lite2", 64, (14, 19, 20), None, 16),
])
def test_graph_equals_torch_features(backbone, size, blocks, feature_dim, grid) -> None:
    torch = require("torch")
    from _torch_reference import build_feature_extractor, extract_torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(size)
    batch = rng.uniform(0, 255, (2, 3, size, size)).astype(np.float32)
    ref = extract_torch(build_feature_extractor(size, blocks, feature_dim, 0, grid, backbone), batch)
    graph = build_backbone_onnx(size, blocks, feature_dim, 0, grid, backbone=backbone)
    got = BackboneRunner(graph).features(batch)
    dim = feature_dim or sum(BACKBONES[backbone].outputs[b][1] for b in blocks)
    assert got.shape == ref.shape == (2, dim, size // grid, size // grid)
    diff = float(np.abs(got - ref).max())
    assert diff < 1e-4 * max(1.0, float(np.abs(ref).max())), f"max abs diff {diff:.3g} from torch"


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_block_table_matches_the_model_package(backbone) -> None:
    require("torch")
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name(f"efficientnet-{backbone}", image_size=64)
    got = []
    for block in net._blocks:
        a = block._block_args
        stride = a.stride[0] if isinstance(a.stride, (list, tuple)) else a.stride
        got.append((a.expand_ratio, a.kernel_size, stride, a.input_filters, a.output_filters))
    assert tuple(got) == BACKBONES[backbone].blocks
    assert net._conv_stem.out_channels == 32


def test_variants_differ_where_they_should() -> None:
    lite0, lite1, lite2 = BACKBONES["lite0"], BACKBONES["lite1"], BACKBONES["lite2"]
    assert len(lite0.blocks) == 16 and len(lite1.blocks) == len(lite2.blocks) == 21
    assert [c for _, c in lite1.outputs.values()] == [c for _, c in lite0.outputs.values()]
    assert [c for _, c in lite2.outputs.values()] == [24, 48, 88, 120, 208, 352]
    assert lite0.default_blocks == (4, 10) and lite1.default_blocks == lite2.default_blocks == (6, 14)
    with pytest.raises(ValueError, match="backbone must be one of"):
        build_backbone_onnx(64, backbone="lite9")
    with pytest.raises(ValueError, match=r"blocks must be a non-empty subset of \[3, 6, 10, 14, 19, 20\] for lite1"):
        build_backbone_onnx(64, (4, 10), backbone="lite1")


@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_weights_read_without_torch_equal_torch_load(backbone) -> None:
    torch = require("torch")
    weights = read_state_dict(weights_path(backbone))
    ref = torch.load(weights_path(backbone), map_location="cpu", weights_only=True)
    assert set(ref) == set(weights)
    for name, tensor in ref.items():
        np.testing.assert_array_equal(weights[name], tensor.numpy(), err_msg=name)


def test_both_file_formats_and_strided_tensors() -> None:
    torch = require("torch")
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    state = {"a": base, "t": base.t(), "view": base[1:3, 2:], "n": torch.tensor(7, dtype=torch.int64),
             "h": torch.ones(3, dtype=torch.float16)}
    for zipped in (True, False):
        buf = io.BytesIO()
        torch.save(state, buf, _use_new_zipfile_serialization=zipped)
        got = read_state_dict_bytes(buf.getvalue())
        assert set(got) == set(state)
        for k, v in state.items():
            np.testing.assert_array_equal(got[k], v.numpy(), err_msg=f"{k} zipped={zipped}")
            assert got[k].dtype == v.numpy().dtype


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_a_pickle_that_would_run_code_is_refused(tmp_path) -> None:
    with pytest.raises(WeightsFileError, match="refused: it references posix.system|refused: it references os.system"):
        read_state_dict_bytes(pickle.dumps(_Evil(), protocol=2))
    # the same inside a zip-format file
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": _Evil()}, protocol=2))
    with pytest.raises(WeightsFileError, match="refused"):
        read_state_dict_bytes(buf.getvalue())
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a weights file at all")
    with pytest.raises(WeightsFileError, match="not a readable PyTorch weights file"):
        read_state_dict(bad)
    with pytest.raises(WeightsFileError, match="cannot read"):
        read_state_dict(tmp_path / "missing.pth")


def test_truncated_weights_are_a_clear_error() -> None:
    raw = open(weights_path(), "rb").read()
    with pytest.raises(WeightsFileError, match="truncated"):
        read_state_dict_bytes(raw[: len(raw) // 2])


def test_weights_that_do_not_fit_the_architecture_are_named(weights) -> None:
    broken = dict(weights)
    broken["_blocks.3._depthwise_conv.weight"] = np.zeros((144, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match=r"_blocks.3._depthwise_conv.weight: \(144, 1, 3, 3\), expected"):
        build_backbone_onnx(64, weights=broken)


def test_graph_is_valid_onnx_and_finds_the_nearest_bank_row(weights) -> None:
    onnx = require("onnx")
    model_bytes = build_backbone_onnx(64, weights=weights)
    onnx.checker.check_model(onnx.load_from_string(model_bytes), full_check=True)
    runner = BackboneRunner(model_bytes)
    rng = np.random.default_rng(3)
    batch = rng.uniform(0, 255, (2, 3, 64, 64)).astype(np.float32)
    feats = runner.features(batch)
    patches = feats.transpose(0, 2, 3, 1).reshape(-1, feats.shape[1])
    bank = patches[rng.choice(len(patches), 9, replace=False)] + rng.normal(0, 0.01, (9, feats.shape[1]))
    scorer = NearestNeighbourScorer(bank.astype(np.float32))
    _, nearest = runner.features_and_nearest(batch, scorer)
    brute = np.linalg.norm(patches[:, None, :] - bank[None], axis=2).argmin(axis=1)
    np.testing.assert_array_equal(nearest.ravel(), brute)


def test_same_padding_matches_tensorflow() -> None:
    assert same_pads(64, 3, 2) == [0, 0, 1, 1]
    assert same_pads(64, 5, 2) == [1, 1, 2, 2]
    assert same_pads(64, 5, 1) == [2, 2, 2, 2]


def test_training_and_inference_run_without_torch(tmp_path) -> None:
    code = (
        "import sys, json\n"
        "sys.modules['torch'] = None\n"
        "import numpy as np\n"
        "from axline.inspect.train import train_inspector\n"
        "from axline.inspect.inferencer import Inspector\n"
        "rng = np.random.default_rng(0)\n"
        "goods = [np.clip(120 + rng.normal(0, 6, (64, 64)), 0, 255).astype(np.uint8) for _ in range(8)]\n"
        f"report = train_inspector(goods, {str(tmp_path / 'm.axi')!r}, size=64, progress=False)\n"
        "bad = goods[0].copy(); bad[20:28, 8:56] = 255\n"
        f"ins = Inspector.load({str(tmp_path / 'm.axi')!r})\n"
        "print(json.dumps({'bank': report['bank_size'], 'good': ins.inspect(goods[1]).score,\n"
        "                  'bad': ins.inspect(bad).score, 'torch': sys.modules['torch'] is None}))\n"
    )
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=240, check=False)
    assert res.returncode == 0, res.stderr
    import json

    data = json.loads(res.stdout.strip().splitlines()[-1])
    assert data["torch"] is True and data["bank"] >= 1
    assert data["bad"] > data["good"]


def test_a_bigger_backbone_trains_scores_and_is_recorded(tmp_path) -> None:
    from axline.inspect.inferencer import Inspector
    from axline.inspect.train import train_inspector

    rng = np.random.default_rng(1)
    goods = [np.clip(120 + rng.normal(0, 6, (64, 64)), 0, 255).astype(np.uint8) for _ in range(8)]
    report = train_inspector(goods, tmp_path / "m.axi", size=64, progress=False, backbone="lite2")
    assert report["feature_dim"] == 48 + 120  # Lite2's stride-8 and last stride-16 stages
    ins = Inspector.load(tmp_path / "m.axi")
    assert ins.model.info["backbone"].startswith("efficientnet-lite2 ")
    assert ins.model.info["blocks"] == [6, 14]
    bad = goods[0].copy()
    bad[20:28, 8:56] = 255
    assert ins.inspect(bad).score > ins.inspect(goods[1]).score
