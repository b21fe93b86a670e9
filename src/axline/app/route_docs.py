"""Contracts of the operations routes (alarms, history, quality, reports) in the route registry.

The route modules enforce their roles with ``require_role``; these entries let the middleware check
the same least role first, and put the routes into ``/api/openapi.json``. A route added without an
entry here (or a ``document`` call in its own module) fails ``tests/test_security_app.py``.
"""

from __future__ import annotations

from axline.app.routes import INT, NS, STR, document

_ID_NOTE = {"type": "object", "properties": {"note": {"type": "string", "maxLength": 2000},
                                             "case_id": {"type": ["integer", "string", "null"]}}}

# alarms
document("GET", "/alarms", role="viewer", summary="the alarm page", produces="text/html")
document("GET", "/wall", role="viewer", summary="the wall screen (kiosk): KPIs, stations and open alarms",
         produces="text/html")
document("GET", "/api/alarms", role="viewer", summary="alarms with their life-cycle state",
         query={"limit": {**INT, "minimum": 1}, "since": NS, "state": STR, "line": STR})
document("GET", "/api/alarms/performance", role="viewer", summary="alarm performance (ISA-18.2 / EEMUA 191)",
         query={"from": NS, "to": {**NS, "minimum": 1}})
document("POST", "/api/alarms/{id}/ack", role="operator", summary="acknowledge an alarm (audited)", body=_ID_NOTE)
document("POST", "/api/alarms/{id}/note", role="operator", summary="add a note to an alarm (audited)",
         body={"type": "object", "properties": {"note": {"type": "string", "maxLength": 2000}}})
document("POST", "/api/alarms/{id}/shelve", role="operator", summary="shelve an alarm for a while (audited)",
         body={"type": "object", "properties": {"minutes": {"type": "number"}, "reason": {"type": "string"}}})
document("POST", "/api/alarms/{id}/unshelve", role="operator", summary="unshelve an alarm (audited)",
         body={"type": "object"})

# history
document("GET", "/history", role="viewer", summary="the history explorer page", produces="text/html")
document("GET", "/api/history/tags", role="viewer", summary="tags that can be explored")
document("GET", "/api/history/series", role="viewer",
         summary="min / mean / max / last per bucket of up to 12 tags over any period (sized by readings)",
         query={"tags": {"type": "string", "maxLength": 100_000}, "from": NS, "to": {**NS, "minimum": 1},
                "step": {**INT, "minimum": 1}})
document("GET", "/api/history/export", role="viewer", summary="CSV or Excel export of tags over a period (audited)",
         query={"tags": {"type": "string", "maxLength": 100_000}, "from": NS, "to": {**NS, "minimum": 1},
                "step": {**INT, "minimum": 1}, "agg": STR, "format": {"type": "string", "enum": ["csv", "xlsx"]},
                "lang": {"type": "string", "enum": ["en", "ko"]}},
         produces=("text/csv", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))

# quality
document("GET", "/quality", role="viewer", summary="the quality (SPC) page", produces="text/html")
document("GET", "/api/quality/tags", role="viewer", summary="tags with control charts")
document("GET", "/api/quality/chart", role="viewer", summary="a control chart with rule violations and capability",
         query={"tag": STR, "from": NS, "to": {**NS, "minimum": 1}, "baseline_from": NS,
                "baseline_to": {**NS, "minimum": 1}, "n": {**INT, "minimum": 2, "maximum": 10},
                "chart": STR, "rules": STR})
document("GET", "/api/quality/status", role="viewer", summary="the live SPC watcher's state")

# shift reports
document("GET", "/reports", role="viewer", summary="the shift report page", produces="text/html")
document("GET", "/api/reports", role="viewer", summary="shift reports made so far",
         query={"limit": {**INT, "minimum": 1, "maximum": 500}, "line": STR})
document("POST", "/api/reports/shift", role="operator", summary="make a shift handover report now",
         body={"type": "object", "properties": {"line": {"type": "string"},
                                                "at": {"type": "integer", "minimum": 0}}})
document("GET", "/reports/{id}.html", role="viewer", summary="a shift report as HTML", produces="text/html",
         query={"lang": {"type": "string", "enum": ["en", "ko"]}})
document("GET", "/reports/{id}.pdf", role="viewer", summary="a shift report as PDF", produces="application/pdf",
         query={"lang": {"type": "string", "enum": ["en", "ko"]}})
document("GET", "/api/reports/value", role="engineer",
         summary="the proof-of-value report: a baseline period against a later one, from the historian",
         produces=("text/html", "application/pdf", "application/json"),
         query={"baseline": {**STR, "required": True, "description": "FROM..TO, ISO dates or date-times, plant time"},
                "period": {**STR, "required": True, "description": "FROM..TO, the period to compare with the baseline"},
                "lang": {"type": "string", "enum": ["en", "ko"]},
                "format": {"type": "string", "enum": ["html", "pdf", "json"], "default": "html"},
                "electricity_price": {"type": "number", "minimum": 0, "description": "per kWh; left out: not priced"},
                "gas_price": {"type": "number", "minimum": 0, "description": "per Nm3; left out: not priced"},
                "currency": {**STR, "default": "KRW"},
                "investment": {"type": "number", "minimum": 0, "description": "for the payback; left out: none"}})

# know-how cases
_CASE = {"type": "object", "properties": {k: {"type": "string", "maxLength": 5000}
                                          for k in ("symptom", "cause", "action", "asset", "title")}}
document("GET", "/knowhow", role="viewer", summary="the know-how page", produces="text/html")
document("GET", "/api/knowhow/status", role="viewer", summary="the know-how base's state")
document("GET", "/api/knowhow/cases", role="viewer", summary="search or list cases",
         query={"q": {"type": "string", "maxLength": 500}, "asset": STR, "top": {**INT, "minimum": 1, "maximum": 50},
                "state": {"type": "string", "enum": ["draft", "approved", "retired"]}})
document("POST", "/api/knowhow/cases", role="operator", summary="record a case (a draft)", body=_CASE)
document("GET", "/api/knowhow/cases/{id}", role="viewer", summary="one case with its versions")
document("POST", "/api/knowhow/cases/{id}", role="operator", summary="edit a case (a new version)", body=_CASE)
document("POST", "/api/knowhow/cases/{id}/approve", role="approver",
         summary="approve a case someone else wrote", body={"type": "object"})
document("POST", "/api/knowhow/cases/{id}/feedback", role="operator", summary="was this case helpful?",
         body={"type": "object", "properties": {"helpful": {"type": "boolean"}}})
document("POST", "/api/knowhow/cases/{id}/photos", role="operator", summary="add a photo to a case",
         query={"name": STR}, max_body=8 * 2**20)
document("GET", "/api/knowhow/photos/{pid}", role="viewer", summary="a case photo",
         produces=("image/jpeg", "image/png", "image/webp"))
document("GET", "/api/knowhow/prefill", role="operator", summary="a draft case prefilled from an event",
         query={"event_id": {**INT, "minimum": 0}})
document("GET", "/api/knowhow/alarms", role="viewer", summary="recent alarms to record cases from")
document("GET", "/api/knowhow/suggestions", role="viewer", summary="cases that match an event",
         query={"event_id": {**INT, "minimum": 0}})
document("GET", "/api/knowhow/gaps", role="engineer", summary="alarms without a case")
document("POST", "/api/knowhow/consent", role="operator", summary="consent to being named as an author",
         body={"type": "object", "properties": {"given": {"type": "boolean"}}})
document("GET", "/api/knowhow/authors/{who}/export", role="admin", summary="everything stored about an author")
document("POST", "/api/knowhow/authors/{who}/delete", role="admin", summary="remove an author's personal data",
         body={"type": "object"})
