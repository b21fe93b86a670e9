"""Quality specification limits and the report language in the plant file."""

from __future__ import annotations

import pytest

from axline.plant import PlantConfigError, example_plant_text, parse_plant


def _with(tag_extra: str = "", plant_extra: str = "") -> str:
    return f"""
plant: {{site: s, area: a{plant_extra}}}
lines:
  - id: l1
    assets:
      - id: cnc1
        cell: cnc
        kind: cnc
        tags:
          - {{signal: bore, unit: mm{tag_extra}}}
"""


def test_demo_plant_has_the_bore_spec_and_korean_reports():
    plant = parse_plant(example_plant_text(), "demo_plant.yaml")
    bore = plant.tag("changwon/plant1/line1/cnc/cnc1/part_dimension")
    assert bore.spec == {"lsl": 24.98, "usl": 25.02, "target": 25.0}
    assert bore.to_json()["spec"] == bore.spec
    assert plant.language == "ko" and plant.to_json()["language"] == "ko"


def test_spec_and_language_mistakes_name_the_key():
    assert parse_plant(_with(", spec: {usl: 3}")).all_tags()[0].spec == {"usl": 3.0}
    assert parse_plant(_with()).language == "en"
    with pytest.raises(PlantConfigError, match=r"tags\[0\]\.spec: give at least one specification limit"):
        parse_plant(_with(", spec: {target: 3}"))
    with pytest.raises(PlantConfigError, match=r"spec: lsl \(5\) must be below usl \(3\)"):
        parse_plant(_with(", spec: {lsl: 5, usl: 3}"))
    with pytest.raises(PlantConfigError, match=r"tags\[0\]\.spec\.tol"):
        parse_plant(_with(", spec: {tol: 3}"))
    with pytest.raises(PlantConfigError, match=r"plant\.language"):
        parse_plant(_with(plant_extra=", language: de"))
