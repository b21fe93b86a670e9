"""Visual inspection learnt from good parts only.

Deployable side (NumPy + onnxruntime, no torch): :class:`Inspector`, :class:`Verdict`,
:class:`InspectorModel`, :func:`save_heatmap_overlay`. Training side (needs the ``train`` extra):
``axline.inspect.train.train_inspector`` and ``update_with_feedback``.
"""

from axline.inspect.inferencer import ImageError, Inspector, Verdict, save_heatmap_overlay
from axline.inspect.model import InspectorModel, ModelFileError

__all__ = ["ImageError", "Inspector", "InspectorModel", "ModelFileError", "Verdict", "save_heatmap_overlay"]
