"""The plant model: ISA-95 hierarchy, tags with units and limits, sources, cameras, products.

A plant file is YAML. Loading validates every key and value; the first mistake raises
``PlantConfigError`` naming the file, the key path and what is allowed, for example::

    plant.yaml: lines[0].assets[2].tags[1].unit: 'degc' is not a known unit (did you mean 'degC'?)

The model and its vocabularies live in :mod:`axline.plant.model`, the validator in
:mod:`axline.plant.checks`, the hierarchy's parser in :mod:`axline.plant.parse` and the other
sections (historian, cameras, monitors, simulation, safety) in :mod:`axline.plant.sections`.
"""

from __future__ import annotations

from axline.plant.model import (
    ASSET_KINDS,
    CAMERA_SOURCES,
    KPI_KEYS,
    LANGUAGES,
    SAFETY_DEFAULTS,
    TAG_KINDS,
    UNITS,
    Asset,
    Camera,
    ConnectorConfig,
    Line,
    MonitorConfig,
    Plant,
    PlantConfigError,
    Shift,
    Source,
    Tag,
)
from axline.plant.parse import example_plant_text, load_plant, parse_plant
from axline.plant.sections import parse_safety

__all__ = [
    "ASSET_KINDS", "CAMERA_SOURCES", "KPI_KEYS", "LANGUAGES", "SAFETY_DEFAULTS", "TAG_KINDS", "UNITS",
    "Asset", "Camera", "ConnectorConfig", "Line", "MonitorConfig", "Plant", "PlantConfigError", "Shift",
    "Source", "Tag", "example_plant_text", "load_plant", "parse_plant", "parse_safety",
]
