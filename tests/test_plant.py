"""Plant file loading: good files load into the model; each mistake names file, key path and fix."""

from __future__ import annotations

import textwrap

import pytest
import yaml

from axline.plant import PlantConfigError, load_plant, parse_plant

GOOD = textwrap.dedent("""
    plant:
      site: changwon
      area: plant1
      name: {en: Changwon Plant 1, ko: 창원 1공장}
      timezone: Asia/Seoul
    historian: {backend: embedded, path: data/historian}
    connectors:
      - name: plc1
        type: opcua
        endpoint: opc.tcp://127.0.0.1:4840/x
    lines:
      - id: line2
        takt_s: 30
        ideal_cycle_s: 25
        shifts:
          - {name: A, start: "06:00", hours: 8}
        kpi: {parts_total: press3/parts, state: press3/state}
        assets:
          - id: press3
            cell: press
            kind: press
            connector: plc1
            tags:
              - {signal: spindle_temp, unit: degC, range: [0, 150], period_s: 1}
              - {signal: parts, unit: count, kind: counter}
              - {signal: state, unit: enum, kind: state}
              - {signal: setpoint, unit: degC, writable: true, kind: setpoint,
                 source: {address: "ns=3;s=Press3.SP"}}
    cameras:
      - {id: cam1, asset: press3, source: folder, path: images, reject_tag: press3/setpoint}
""")


def _mutate(fn) -> str:
    doc = yaml.safe_load(GOOD)
    fn(doc)
    return yaml.safe_dump(doc, allow_unicode=True)


def _error(text: str, lang: str = "en") -> str:
    with pytest.raises(PlantConfigError) as ei:
        parse_plant(text, "plant.yaml")
    # the message holds both languages: "English / 한국어"
    assert str(ei.value).startswith(ei.value.text("en") + " / ")
    return ei.value.text(lang)


def test_good_file_loads_into_the_model():
    plant = parse_plant(GOOD, "plant.yaml")
    assert plant.site == "changwon" and plant.name["ko"] == "창원 1공장"
    line = plant.lines[0]
    assert line.path == "changwon/plant1/line2"
    temp = plant.tag("changwon/plant1/line2/press/press3/spindle_temp")
    assert temp is not None and temp.unit == "degC" and (temp.lo, temp.hi) == (0, 150)
    # default address is the tag path; an explicit one is kept; the asset's connector is inherited
    assert temp.source.connector == "plc1" and temp.source.address == temp.path
    sp = plant.tag("changwon/plant1/line2/press/press3/setpoint")
    assert sp.writable and sp.source.address == "ns=3;s=Press3.SP"
    assert line.kpi["parts_total"] == "changwon/plant1/line2/press/press3/parts"
    assert plant.cameras[0].asset == "changwon/plant1/line2/press/press3"
    assert plant.cameras[0].reject_tag == sp.path
    assert plant.connectors[0].options["mode"] == "subscribe"  # schema default filled in
    assert len(plant.connector_tags("plc1")) == 4


def test_unit_typo_names_key_path_and_suggestion():
    msg = _error(_mutate(lambda d: d["lines"][0]["assets"][0]["tags"].__setitem__(
        0, {"signal": "spindle_temp", "unit": "degc"})))
    assert msg == ("plant.yaml: lines[0].assets[0].tags[0].unit: 'degc' is not a known unit "
                   "(did you mean 'degC'?); see axline.plant.UNITS for the list")
    ko = _error(_mutate(lambda d: d["lines"][0]["assets"][0]["tags"].__setitem__(
        0, {"signal": "spindle_temp", "unit": "degc"})), "ko")
    assert ko == ("plant.yaml: lines[0].assets[0].tags[0].unit: 'degc'은(는) 알 수 없는 단위입니다 "
                  "('degC'을(를) 뜻했나요?). 목록은 axline.plant.UNITS에 있습니다")


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (lambda d: d["plant"].pop("site"), "plant.yaml: plant: missing required key 'site'"),
        (lambda d: d["lines"][0].__setitem__("takt", 3), "lines[0].takt: unknown key (did you mean 'takt_s'?)"),
        (lambda d: d["lines"][0].__setitem__("takt_s", -1), "lines[0].takt_s: -1 is out of range: must be > 0"),
        (lambda d: d["lines"][0]["assets"][0].__setitem__("kind", "pres"),
         "lines[0].assets[0].kind: 'pres' is not a known asset kind (did you mean 'press'?)"),
        (lambda d: d["lines"][0]["assets"][0]["tags"][0].__setitem__("range", [5, 1]),
         "lines[0].assets[0].tags[0].range: low (5) must be below high (1)"),
        (lambda d: d["lines"][0]["assets"][0]["tags"][1].__setitem__("signal", "spindle_temp"),
         "duplicate signal 'spindle_temp'"),
        (lambda d: d["lines"][0]["assets"][0].__setitem__("connector", "plc2"),
         "lines[0].assets[0].connector: 'plc2' is not a known connector name (did you mean 'plc1'?)"),
        (lambda d: d["connectors"][0].__setitem__("endpint", "x"),
         "connectors[0].endpint: unknown option (did you mean 'endpoint'?)"),
        (lambda d: d["connectors"][0].__setitem__("publishing_interval_ms", "fast"),
         "connectors[0].publishing_interval_ms: expected float"),
        (lambda d: d["connectors"][0].__setitem__("type", "opc-ua"),
         "connectors[0].type: 'opc-ua' is not a known connector type (did you mean 'opcua'?)"),
        (lambda d: d["lines"][0]["shifts"][0].__setitem__("start", "6am"),
         "lines[0].shifts[0].start: '6am' is not a time of day"),
        (lambda d: d["lines"][0]["kpi"].__setitem__("state", "press3/stat"),
         "lines[0].kpi.state: 'press3/stat' is not a tag of this plant"),
        (lambda d: d["cameras"][0].__setitem__("reject_tag", "press3/parts"),
         "cameras[0].reject_tag: tag 'changwon/plant1/line2/press/press3/parts' is not writable"),
        (lambda d: d["plant"].__setitem__("timezone", "Seoul"), "plant.timezone: 'Seoul' is not a known IANA time zone"),
        (lambda d: d["lines"][0].__setitem__("id", "Line 2"), "lines[0].id: 'Line 2' is not a valid id"),
        (lambda d: d["lines"][0]["assets"][0]["tags"][0].__setitem__("writable", "yes"),
         "lines[0].assets[0].tags[0].writable: expected true or false, got 'yes'"),
    ],
)
def test_each_mistake_gives_one_clear_error(mutation, expected):
    msg = _error(_mutate(mutation))
    assert msg.startswith("plant.yaml: ")
    assert expected in msg


def test_exponent_without_a_dot_is_a_number():
    plant = parse_plant(GOOD.replace("range: [0, 150]", "range: [0, 1e3]"), "plant.yaml")
    assert plant.tag("changwon/plant1/line2/press/press3/spindle_temp").hi == 1000.0


def test_yaml_syntax_error_names_line():
    msg = _error("plant:\n  site: [unclosed\n")
    assert msg.startswith("plant.yaml: line ") and "not valid YAML" in msg


def test_missing_file_says_how_to_create_one(tmp_path):
    with pytest.raises(PlantConfigError, match="axline init"):
        load_plant(tmp_path / "nope.yaml")


def test_bundled_demo_plant_is_valid_and_matches_the_virtual_factory():
    from axline.plant import example_plant_text
    from axline.sim.line import VirtualLine

    plant = parse_plant(example_plant_text(), "demo_plant.yaml")
    line = VirtualLine(seed=0, faults=None, render_images=False)
    sim_tags = {t.path: t for t in line.tags}
    plant_tags = {t.path: t for t in plant.all_tags()}
    assert set(plant_tags) == set(sim_tags)
    for path, st in sim_tags.items():
        pt = plant_tags[path]
        assert (pt.unit, pt.writable, pt.period_s) == (st.unit, st.writable, st.period_s), path
    assert plant.lines[0].kpi.keys() >= {"state", "parts_total", "parts_good", "parts_rejected", "energy"}
