"""The torch reference of the patch-feature graph: EfficientNet-Lite0/1/2 from its model package.

Only the tests use it, to check that the graph axline writes without torch computes the same
features and scores. It needs the ``train`` extra (torch, efficientnet-lite-pytorch).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

from axline.inspect.features import (
    BACKBONES,
    DEFAULT_BACKBONE,
    DEFAULT_BLOCKS,
    DEFAULT_GRID_STRIDE,
    random_projection,
    validate_feature_config,
    weights_path,
)
from axline.inspect.model import InspectorModel


def require(module: str) -> Any:
    """Import a test-only peer (torch, onnx); under CI a missing one fails instead of skipping."""
    try:
        return __import__(module)
    except ImportError:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{module} is missing: install the test extras (pip install -e '.[dev,train]')")
        pytest.skip(f"{module} not installed")


def build_feature_extractor(
    size: int = 256,
    blocks: tuple[int, ...] = DEFAULT_BLOCKS,
    feature_dim: int | None = None,
    seed: int = 0,
    grid_stride: int = DEFAULT_GRID_STRIDE,
    backbone: str = DEFAULT_BACKBONE,
) -> Any:
    """The torch patch-feature module (eval mode, pretrained weights loaded by torch itself)."""
    validate_feature_config(size, blocks, feature_dim, grid_stride, backbone)
    import torch
    from efficientnet_lite_pytorch import EfficientNet
    from torch import nn
    from torch.nn import functional as F

    net = EfficientNet.from_name(f"efficientnet-{backbone}", image_size=size)
    state = torch.load(weights_path(backbone), map_location="cpu", weights_only=True)
    missing = net.load_state_dict(state, strict=False)
    assert not missing.missing_keys, missing.missing_keys[:5]
    last = max(blocks)
    outputs = BACKBONES[backbone].outputs
    in_dim = sum(outputs[b][1] for b in blocks)
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
            self.proj = None if projection is None else torch.from_numpy(projection)[:, :, None, None]

        def features(self, x: Any) -> Any:
            x = (x - 127.5) / 127.5
            x = self.act(self.bn0(self.stem(x)))
            taps = []
            for i, block in enumerate(self.blocks):
                x = block(x)
                if i in self.taps:
                    taps.append(self.pool(x))
            maps = []
            for block_index, tap in zip(self.taps, taps, strict=True):
                stride = outputs[block_index][0]
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


def extract_torch(module: Any, batch: np.ndarray) -> np.ndarray:
    """Torch features ``(N, D, h, w)`` of ``(N, 3, H, W)`` float32 pixels 0..255."""
    import torch

    with torch.inference_mode():
        return module.features(torch.from_numpy(np.ascontiguousarray(batch))).numpy()


def torch_image_scores(module: Any, model: InspectorModel, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Torch features and torch nearest-neighbour distances: (patch scores ``(N, h, w)``, image scores)."""
    import torch

    bank_t = torch.from_numpy(np.asarray(model.bank, dtype=np.float64))
    out = []
    with torch.inference_mode():
        for x in batch:
            f = module.features(torch.from_numpy(np.ascontiguousarray(x[None])))[0]
            d, h, w = f.shape
            q = f.reshape(d, h * w).T.to(torch.float64)
            out.append(torch.cdist(q, bank_t).min(dim=1).values.reshape(h, w))
    raw = torch.stack(out)
    if model.position_scale is not None:
        raw = raw / torch.from_numpy(model.position_scale).to(torch.float64)
    flat = raw.reshape(len(raw), -1)
    k = min(model.top_k, flat.shape[1])
    return raw.numpy().astype(np.float32), flat.topk(k, dim=1).values.mean(dim=1).numpy()
