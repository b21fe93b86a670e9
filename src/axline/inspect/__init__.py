"""Visual inspection learnt from good parts only.

Both sides run on NumPy + onnxruntime, without torch. Deployable side: :class:`Inspector`,
:class:`Verdict`, :class:`InspectorModel`, :func:`save_heatmap_overlay`. Training side:
``axline.inspect.train.train_inspector`` and ``update_with_feedback``; the backbone graph comes
from :mod:`axline.inspect.features`.
"""

from axline.inspect.inferencer import ImageError, Inspector, Verdict, save_heatmap_overlay
from axline.inspect.model import InspectorModel, ModelFileError

__all__ = ["ImageError", "Inspector", "InspectorModel", "ModelFileError", "Verdict", "save_heatmap_overlay"]
