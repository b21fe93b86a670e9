"""The virtual line's tags as data: the station states and, per asset, its signals.

Each row of ``ASSET_SIGNALS`` is ``(signal, unit, lo, hi, period_s, kind, writable, name_en,
name_ko)``; a station's physics returns its values in the order of its rows, and the line lists its
tags in the order of the stations, then the line totals.
"""

from __future__ import annotations

from dataclasses import dataclass

STATE_STOPPED, STATE_RUNNING, STATE_IDLE, STATE_MICROSTOP, STATE_CHANGEOVER, STATE_DOWN = range(6)
STATE_NAMES: dict[int, str] = {
    STATE_STOPPED: "stopped",
    STATE_RUNNING: "running",
    STATE_IDLE: "idle",
    STATE_MICROSTOP: "microstop",
    STATE_CHANGEOVER: "changeover",
    STATE_DOWN: "down",
}
STATE_NAMES_KO: dict[int, str] = {
    STATE_STOPPED: "정지",
    STATE_RUNNING: "가동",
    STATE_IDLE: "대기",
    STATE_MICROSTOP: "순간정지",
    STATE_CHANGEOVER: "교체",
    STATE_DOWN: "고장",
}


@dataclass(slots=True)
class SimTag:
    """One simulated tag: path, unit, physical range, sampling period and labels."""

    path: str
    unit: str
    lo: float
    hi: float
    period_s: float
    writable: bool = False
    kind: str = "analog"  # analog | counter | state | bool | setpoint
    name_en: str = ""
    name_ko: str = ""


#: per asset (station asset name, or ``totals`` for the line), its signal rows in value order
ASSET_SIGNALS: dict[str, tuple[tuple, ...]] = {
    "press1": (
        ("ram_force", "kN", 0.0, 1200.0, 0.2, "analog", False, "Ram force", "램 가압력"),
        ("ram_position", "mm", 0.0, 300.0, 0.2, "analog", False, "Ram position", "램 위치"),
        ("hydraulic_pressure", "bar", 0.0, 250.0, 0.2, "analog", False, "Hydraulic pressure", "유압"),
        ("oil_temp", "degC", 0.0, 90.0, 1.0, "analog", False, "Hydraulic oil temperature", "작동유 온도"),
        ("motor_power", "kW", 0.0, 60.0, 0.2, "analog", False, "Pump motor power", "펌프 모터 전력"),
        ("stroke_count", "count", 0.0, 1e12, 1.0, "counter", False, "Stroke count", "타수"),
        ("cycle_time", "s", 0.0, 3600.0, 1.0, "analog", False, "Cycle time", "사이클 타임"),
        ("state", "", 0.0, 5.0, 1.0, "state", False, "State", "상태"),
    ),
    "cnc1": (
        ("spindle_speed", "rpm", 0.0, 6000.0, 0.2, "analog", False, "Spindle speed", "주축 회전수"),
        ("spindle_current", "A", 0.0, 60.0, 0.2, "analog", False, "Spindle current", "주축 전류"),
        ("spindle_temp", "degC", 0.0, 100.0, 1.0, "analog", False, "Spindle temperature", "주축 온도"),
        ("vibration_rms", "mm/s", 0.0, 40.0, 0.2, "analog", False, "Spindle vibration (RMS)",
         "주축 진동(RMS)"),
        ("coolant_flow", "L/min", 0.0, 40.0, 0.2, "analog", False, "Coolant flow", "절삭유 유량"),
        ("coolant_pressure", "bar", 0.0, 10.0, 0.2, "analog", False, "Coolant pressure", "절삭유 압력"),
        ("coolant_temp", "degC", 0.0, 70.0, 1.0, "analog", False, "Coolant temperature", "절삭유 온도"),
        ("filter_dp", "bar", 0.0, 4.0, 0.2, "analog", False, "Coolant filter differential pressure",
         "절삭유 필터 차압"),
        ("part_dimension", "mm", 24.8, 25.2, 1.0, "analog", False, "Bore diameter", "보어 직경"),
        ("tool_wear", "%", 0.0, 200.0, 1.0, "analog", False, "Tool wear", "공구 마모"),
        ("power", "kW", 0.0, 40.0, 0.2, "analog", False, "Power", "소비 전력"),
        ("cycle_time", "s", 0.0, 3600.0, 1.0, "analog", False, "Cycle time", "사이클 타임"),
        ("state", "", 0.0, 5.0, 1.0, "state", False, "State", "상태"),
    ),
    "furnace1": (
        ("zone1_temp", "degC", 0.0, 1100.0, 1.0, "analog", False, "Zone 1 temperature", "1존 온도"),
        ("zone2_temp", "degC", 0.0, 1100.0, 1.0, "analog", False, "Zone 2 temperature", "2존 온도"),
        ("temp_setpoint", "degC", 700.0, 950.0, 1.0, "setpoint", True, "Temperature setpoint", "온도 설정값"),
        ("fuel_flow", "Nm3/h", 0.0, 150.0, 0.2, "analog", False, "Gas flow", "가스 유량"),
        ("air_flow", "Nm3/h", 0.0, 2000.0, 0.2, "analog", False, "Combustion air flow", "연소 공기 유량"),
        ("o2", "%", 0.0, 21.0, 1.0, "analog", False, "Flue gas O2", "배기 산소 농도"),
        ("exhaust_temp", "degC", 0.0, 800.0, 1.0, "analog", False, "Exhaust temperature", "배기 온도"),
        ("power", "kW", 0.0, 40.0, 0.2, "analog", False, "Power", "소비 전력"),
        ("parts_treated", "count", 0.0, 1e12, 1.0, "counter", False, "Parts treated", "열처리 수량"),
        ("state", "", 0.0, 5.0, 1.0, "state", False, "State", "상태"),
        ("o2_setpoint", "%", 0.5, 8.0, 1.0, "setpoint", True, "Flue O2 setpoint (excess air)",
         "배기 산소 설정값(공기비)"),
        ("belt_speed", "%", 60.0, 130.0, 1.0, "setpoint", True, "Belt speed", "벨트 속도"),
        ("co", "ppm", 0.0, 5000.0, 1.0, "analog", False, "Flue gas CO", "배기 일산화탄소"),
        ("hardness", "HRC", 20.0, 70.0, 1.0, "analog", False, "Part hardness", "부품 경도"),
    ),
    "camera1": (
        ("parts_inspected", "count", 0.0, 1e12, 1.0, "counter", False, "Parts inspected", "검사 수량"),
        ("parts_rejected", "count", 0.0, 1e12, 1.0, "counter", False, "Parts rejected", "불량 배출 수량"),
        ("diverter", "", 0.0, 1.0, 0.2, "bool", True, "Reject diverter", "불량 배출기"),
        ("result_ok", "", 0.0, 1.0, 0.2, "bool", True, "Inspection OK", "검사 합격"),
        ("power", "kW", 0.0, 5.0, 0.2, "analog", False, "Power", "소비 전력"),
        ("state", "", 0.0, 5.0, 1.0, "state", False, "State", "상태"),
    ),
    "packer1": (
        ("parts_packed", "count", 0.0, 1e12, 1.0, "counter", False, "Parts packed", "포장 수량"),
        ("power", "kW", 0.0, 15.0, 0.2, "analog", False, "Power", "소비 전력"),
        ("state", "", 0.0, 5.0, 1.0, "state", False, "State", "상태"),
    ),
    "totals": (
        ("parts_total", "count", 0.0, 1e12, 1.0, "counter", False, "Parts produced", "총 생산 수량"),
        ("parts_good", "count", 0.0, 1e12, 1.0, "counter", False, "Good parts", "양품 수량"),
        ("parts_rejected", "count", 0.0, 1e12, 1.0, "counter", False, "Rejected parts", "불량 수량"),
        ("energy", "kWh", 0.0, 1e12, 1.0, "counter", False, "Electric energy", "전력량"),
        ("gas", "Nm3", 0.0, 1e12, 1.0, "counter", False, "Gas consumed", "가스 사용량"),
        ("power", "kW", 0.0, 300.0, 0.2, "analog", False, "Line power", "라인 전력"),
        ("state", "", 0.0, 5.0, 1.0, "state", False, "Line state", "라인 상태"),
    ),
}
