"""Operating know-how: episodes from a real audit trail file and historian, advice with evidence, the
route's role check, and the bench section on a short run."""

from __future__ import annotations

import datetime as dt
import json
import random

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer

from _auth import make_security, token_headers
from _fake_service import FakeService, open_test_historian
from axline.app.audit import AuditLog
from axline.app.server import create_app
from axline.batch import Batch
from axline.knowhow import operating as op
from axline.knowhow.operating_live import OperatingKnowHow

NS = 1_000_000_000
T0 = 1_780_000_000 * NS
ASSET = "site/area/line1/oven/oven1"
LOAD, FLOW, TEMP_SP, AIR_SP = (f"{ASSET}/{s}" for s in ("load", "flow", "temp_setpoint", "air_setpoint"))


def _tag(path: str, kind: str = "analog", writable: bool = False) -> dict:
    signal = path.rsplit("/", 1)[-1]
    return {"path": path, "signal": signal, "unit": "", "kind": kind, "writable": writable,
            "name": {"en": signal.replace("_", " "), "ko": signal}}


PLANT = {"lines": [{"path": "site/area/line1", "assets": [{
    "path": ASSET, "id": "oven1", "name": {"en": "Oven", "ko": "오븐"},
    "tags": [_tag(LOAD), _tag(f"{ASSET}/parts", "counter"), _tag(f"{ASSET}/state", "state"), _tag(FLOW),
             _tag(TEMP_SP, "setpoint", True), _tag(AIR_SP, "setpoint", True)]}]}]}


def _iso(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expert_day(tmp_path, hours: float = 12.0, seed: int = 3):
    """A process whose load changes every 40-80 minutes; an expert sets temp = 700 + 100 x load (step 10)
    and air with the gas flow; a trainee moves at random; a refused write is in the trail too. Returns
    (audit log path, historian, the expert's targets in time order)."""
    rng = random.Random(seed)
    now = [T0]
    audit = AuditLog(tmp_path / "audit.jsonl", clock=lambda: _iso(now[0]))
    hist = open_test_historian(tmp_path / "h")
    sp = {TEMP_SP: 750.0, AIR_SP: 3.0}
    load, parts, next_load, next_check = 0.5, 0.0, 0.0, 600.0
    t, step = 0.0, 10.0
    while t < hours * 3600:
        if t >= next_load:
            load, next_load = rng.uniform(0.1, 0.9), t + rng.uniform(2400, 4800)
        flow = 20 + 30 * load + 0.05 * (sp[TEMP_SP] - 750) + rng.gauss(0, 0.3)
        parts += load * step / 10
        ts = T0 + int(t * NS)
        vals = {LOAD: load + rng.gauss(0, 0.01), FLOW: flow, f"{ASSET}/parts": parts, f"{ASSET}/state": 2.0, **sp}
        hist.append(Batch(list(vals), np.arange(len(vals), dtype=np.int32), np.full(len(vals), ts, dtype=np.int64),
                          np.array(list(vals.values()), dtype=float), np.zeros(len(vals), dtype=np.uint8)))
        t += step
        now[0] = T0 + int(t * NS)
        if t >= next_check:
            next_check = t + rng.uniform(600, 1200)
            want = {TEMP_SP: 10 * round((700 + 100 * load) / 10), AIR_SP: round(2.0 + 0.05 * flow, 1)}
            for tag, v in want.items():
                if abs(v - sp[tag]) >= (10 if tag == TEMP_SP else 0.2):
                    audit.record("kim", "tag.write", tag, role="operator", old=sp[tag], new=v, result="attempt")
                    audit.record("kim", "tag.write", tag, role="operator", old=sp[tag], new=v, result="ok")
                    sp[tag] = v
            if rng.random() < 0.3:  # a trainee's move in the wrong direction half of the time
                v = sp[TEMP_SP] + rng.choice((-30, 30))
                audit.record("lee", "tag.write", TEMP_SP, role="operator", old=sp[TEMP_SP], new=v, result="ok")
                sp[TEMP_SP] = v
            if rng.random() < 0.1:
                audit.record("kim", "tag.write", TEMP_SP, role="operator", old=sp[TEMP_SP], new=999.0,
                             result="ValueError: outside the range")
    return tmp_path / "audit.jsonl", hist


def test_learns_from_an_audit_trail_file_and_the_historian(tmp_path):
    path, hist = expert_day(tmp_path)
    assert AuditLog(path).verify().ok  # a real, intact hash-chained trail
    cfg = op.OperatingConfig(experts=frozenset({"kim"}))
    context, setpoints = op.plant_context(PLANT)
    assert set(context[ASSET]) == {LOAD, FLOW, f"{ASSET}/parts"} and setpoints[ASSET] == [TEMP_SP, AIR_SP]
    entries = list(op.read_audit(path))
    split = T0 + int(8 * 3600 * NS)
    advisors, info = op.learn(entries, hist, context, setpoints, cfg, until_ns=split)
    assert info["skipped"]["not_experienced"] > 0 and info["skipped"]["not_ok"] > 0  # trainee and refusals left out
    adv = advisors[ASSET]
    assert adv.summary()["setpoints"][TEMP_SP]["based_on"][0] in ("load", "parts", "flow")
    moves, _ = op.expert_moves(entries, cfg, {TEMP_SP, AIR_SP})
    assert all(m.who == "kim" for m in moves)
    later = [e for e in op.build_episodes(moves, hist, context, setpoints, cfg) if e.ts_ns >= split]
    assert later
    agree = total = 0
    for e in later:
        got = {a["tag"]: a for a in adv.advise(e.state)}
        for tag, (a, b) in e.moves.items():
            total += 1
            agree += got[tag]["advice"] == ("raise" if b > a else "lower")
    assert agree / total >= 0.8, (agree, total)
    # the state before an episode is what the historian held, the outcome what followed
    e = later[0]
    assert e.state[TEMP_SP] == e.moves.get(TEMP_SP, (e.state[TEMP_SP],))[0] and LOAD in e.state and LOAD in e.outcome
    # advice for a high load says raise the temperature, with its evidence and no person named
    state = dict(e.state) | {LOAD: 0.9, f"{ASSET}/parts": 0.9 * 360, TEMP_SP: 720.0}
    a = {x["tag"]: x for x in adv.advise(state)}[TEMP_SP]
    assert a["advice"] == "raise" and a["suggested"] > 760 and len(a["evidence"]) >= 1
    assert all(TEMP_SP.rsplit("/", 1)[-1] in ev["moves"] or ev["moves"] for ev in a["evidence"])
    assert "kim" not in json.dumps(adv.advise(state)) and "lee" not in json.dumps(adv.advise(state))
    hist.close()


def test_a_broken_trail_line_or_config_is_an_error(tmp_path):
    p = tmp_path / "audit.jsonl"
    p.write_text('{"action": "tag.write"}\nnot json\n', encoding="utf-8")
    with pytest.raises(op.OperatingError, match=":2:"):
        list(op.read_audit(p))
    with pytest.raises(op.OperatingError, match="experts"):
        op.OperatingConfig.from_dict({"experts": "kim"})
    with pytest.raises(op.OperatingError, match="unknown"):
        op.OperatingConfig.from_dict({"expert": ["kim"]})
    assert op.OperatingConfig.from_dict({"roles": ["engineer"], "before_s": 300}).before_s == 300.0

    def broken() -> op.OperatingConfig:
        return op.OperatingConfig.from_dict({"experts": "kim"}, "knowhow/operating.yaml")

    ok = OperatingKnowHow(broken, PLANT, entries=lambda: iter(()), historian=lambda: None, now_ns=lambda: T0)
    with pytest.raises(op.OperatingError):
        ok.advice()
    assert ok.status()["errors"] == 1 and "experts" in ok.status()["last_error"]


SEC = make_security()


async def test_the_route_checks_roles_and_answers_advice(tmp_path):
    path, hist = expert_day(tmp_path, hours=6.0)
    trail = AuditLog(path)
    svc = FakeService(hist, tick_s=3600, history_s=1)
    svc.operating = OperatingKnowHow(op.OperatingConfig(roles=frozenset({"operator"}), experts=frozenset()),
                                        PLANT, entries=trail.iter_entries, historian=lambda: hist,
                                        now_ns=lambda: T0 + int(6 * 3600 * NS), version=trail.size)
    app = create_app(svc, security=SEC)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        r = await client.get("/api/knowhow/operating")
        assert r.status == 401
        r = await client.get("/api/knowhow/operating", headers=token_headers(SEC, "v", "viewer"))
        assert r.status == 403
        r = await client.get("/api/knowhow/operating", headers=token_headers(SEC, "o", "operator"))
        assert r.status == 200, await r.text()
        body = await r.json()
        assert body["configured"] and body["assets"][0]["asset"] == ASSET
        items = {a["signal"]: a for a in body["assets"][0]["advice"]}
        assert items["temp_setpoint"]["advice"] in ("raise", "lower", "hold")
        assert items["temp_setpoint"]["name"] == {"en": "temp setpoint", "ko": "temp_setpoint"}
        assert items["temp_setpoint"]["evidence"][0]["outcome_top"]
        assert svc.operating.status()["relearnt"] == 1
        await client.get("/api/knowhow/operating", headers=token_headers(SEC, "o", "operator"))
        assert svc.operating.status()["relearnt"] == 1  # the trail did not grow: not relearnt
        # nobody named: the answer says so, and nothing is learnt
        svc.operating = OperatingKnowHow(op.OperatingConfig(), PLANT, entries=trail.iter_entries,
                                            historian=lambda: hist, now_ns=lambda: T0)
        r = await client.get("/api/knowhow/operating", headers=token_headers(SEC, "o", "operator"))
        assert (await r.json()) == {"configured": False, "assets": []}
    finally:
        await client.close()
        hist.close()


def test_bench_section_on_a_short_run(tmp_path):
    from axline.bench import knowhow as bench

    res = bench.run_operating([1], 6.0)
    assert res["held_out_moves"] > 0 and 0.0 <= res["direction_agreement"] <= 1.0
    sd = res["seeds"][0]
    assert sd["expert_writes"] > 0 and sd["trainee_writes"] > 0 and sd["learnt"]["skipped"]["not_experienced"] > 0
    assert len([r for r in sd["details"] if r["expert"] != "hold"]) == res["held_out_moves"]
    page = bench.render({"benchmark": "knowhow", "date": "d", "machine": {}, "command": "axline bench knowhow",
                         "load_avg_start": [0, 0, 0], "load_avg_end": [0, 0, 0], "wall_s": 1.0, "peak_rss_mb": 1.0,
                         "protocol": "p", "operating": res})
    assert "(e) Operating know-how" in page and str(res["direction_agreement"]) in page


def test_learnt_masker_options():
    from axline.knowhow.mask import learn_masker

    texts = [[("ZORTEC", True), ("hose", False), ("repair", False)], [("T", True), ("piece", False)],
             [("T", False), ("junction", False)], [("T", False), ("bar", False)], [("by", False), ("ACME", True)]]
    m = learn_masker(texts, min_share=0.5, names=200, parts=True)
    assert m.is_sensitive("Zortec") and not m.is_sensitive("T")  # "T" is mostly not a name in the labels
    assert m.is_sensitive("Zorte") and m.is_sensitive("Smith&Zortec")  # the start of, and joined with, a known word
    assert m.is_sensitive("XZortec") and not m.is_sensitive("Zor")  # ends with a known word; too short a start
    assert m.is_sensitive("Michael") and not m.is_sensitive("hose") and not m.is_sensitive("June")
    loose = learn_masker(texts, min_share=0.0)
    assert loose.is_sensitive("T") and not loose.is_sensitive("Michael")
    ctx = learn_masker(texts * 3, context_min=3)
    assert "by" in ctx.left and ctx.is_sensitive("Zorblat", prev="by") and not ctx.is_sensitive("Zorblat")


def test_a_setpoint_that_follows_a_signal_in_a_line_is_learnt_as_a_line():
    rng = random.Random(3)
    eps, sp = [], AIR_SP
    cur = 3.0
    for i in range(30):
        flow = rng.uniform(40.0, 56.0)
        want = round(3.0 + 0.1 * (flow - 48.0), 1)
        moves = {sp: (cur, want)} if abs(want - cur) >= 0.3 else {TEMP_SP: (850.0, 855.0)}
        state = {FLOW: flow, LOAD: rng.uniform(0, 100), sp: cur, TEMP_SP: 850.0}
        eps.append(op.Episode(ASSET, T0 + i * 600 * NS, T0 + i * 600 * NS, moves, state))
        cur = moves[sp][1] if sp in moves else cur
    adv = op.Advisor(eps)
    m = adv.models[sp]
    assert m.mode == "linear" and m.features[0] == FLOW
    # beyond the learnt flows the line still says which way (a vote of neighbours would stop at the edge)
    hi = {a["tag"]: a for a in adv.advise({FLOW: 62.0, LOAD: 50.0, sp: 3.0, TEMP_SP: 850.0})}[sp]
    lo = {a["tag"]: a for a in adv.advise({FLOW: 35.0, LOAD: 50.0, sp: 3.0, TEMP_SP: 850.0})}[sp]
    assert hi["advice"] == "raise" and hi["suggested"] > 4.0
    assert lo["advice"] == "lower" and lo["suggested"] < 2.0


def test_operating_errors_speak_korean_too():
    from axline import i18n

    with pytest.raises(op.OperatingError) as e:
        op.OperatingConfig.from_dict({"experts": ["kim"], "bogus": 1}, "ops.yaml")
    assert "bogus" in str(e.value) and e.value.key == "knowhow.err.op_unknown_keys"
    assert "알 수 없는 키" in i18n.text(e.value.key, "ko", **e.value.params)


def test_the_generic_masker_holds_no_words_of_any_data_set():
    from importlib.resources import files

    from axline.knowhow.mask import MASK_NAME, VocabularyMasker, default_masker, general_vocabulary, mask_text

    assert not files("axline.data").joinpath("knowhow_masker.json").is_file()
    m = default_masker()
    assert m.sensitive == set() and m.vocab == set() and not m.left and not m.right
    assert {"pump", "bearing", "replace"} <= general_vocabulary()  # read from installed packages
    text, n = mask_text("AB123 Michael replaced hose, repairs by Zorblat, call 010-1234-5678")
    assert "Michael" not in text and "Zorblat" not in text and "5678" not in text and n == 3 and MASK_NAME in text
    assert mask_text("replace hydraulic hose on boom, bearing noise by the pump")[1] == 0
    assert mask_text("베어링 6205-2RS 교체, 압력 0.5 MPa")[1] == 0
    ini = VocabularyMasker({"fit", "box"}, initials=True)
    assert ini.is_sensitive("R", next="Quarnby") and not ini.is_sensitive("J", next="box")
    assert not ini.is_sensitive("a", next="Quarnby")
    learnt = VocabularyMasker({"hose"}, {"zortec"}, names=200, min_len=6, general=True, cues=True)
    assert VocabularyMasker.from_json(learnt.to_json()).to_json() == learnt.to_json()
    assert "james" not in learnt.to_json()["vocabulary"]
    assert VocabularyMasker(family=1000).is_sensitive("Johnson") and not VocabularyMasker().is_sensitive("Johnson")


def test_unknown_words_are_masked_unless_near_a_known_word():
    from axline.knowhow.mask import VocabularyMasker

    m = VocabularyMasker({"hydraulic", "hose"}, min_len=6, general=True)
    assert m.is_sensitive("Qwzrtplex")  # no known word is like it
    assert not m.is_sensitive("hydrualic") and not m.is_sensitive("hydraul")  # a typo, an abbreviation
    assert not m.is_sensitive("bearings") and not m.is_sensitive("Zort")  # an ordinary word; too short
    ini = VocabularyMasker({"fabricate", "install"}, initials=True)
    assert ini.is_sensitive("R", next="Quarnby") and not ini.is_sensitive("P", next="Fabricte")  # a typo is no name
