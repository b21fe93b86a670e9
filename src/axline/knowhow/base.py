"""The know-how base of a plant: record, review, find, learn from feedback, export and delete.

:class:`KnowHow` owns a :class:`~axline.knowhow.store.CaseStore` and its
:class:`~axline.knowhow.search.CaseIndex`. All methods block (SQLite/PostgreSQL, encoding): the
web app calls them in a worker thread.

Privacy rules (also in the README): authors are pseudonyms (``W-`` and a keyed hash of the user
name); a real name is stored only with the author's recorded consent, shown only to admins, and
erased when consent is withdrawn; names and phone numbers in free text are masked whenever a case
leaves the knowledge base (shared on a page, exported); an author's data can be exported and
deleted whole; nothing reports counts or rankings per worker.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from axline import i18n
from axline.knowhow.mask import FIT_FOLDS, VocabularyMasker, default_masker, fit_masker, mask_text
from axline.knowhow.search import CaseIndex
from axline.knowhow.signals import snapshot_from_event
from axline.knowhow.store import TEXT_FIELDS, CaseError, CaseStore
from axline.knowhow.text import Glossary, detect_language

log = logging.getLogger(__name__)

GAP_CONFIDENCE = 0.5  # a search whose best case is below this is listed as a gap
WINDOW_BEFORE_NS = 10 * 60 * 1_000_000_000
WINDOW_AFTER_NS = 2 * 60 * 1_000_000_000
MAX_IMPORT_ROWS = 200_000
IMPORT_FIELDS = ("id", "title", "symptom", "cause", "action", "asset", "language", "author", "outcome", "parts",
                 "repair_min", "tags")
# column names in old work-order spreadsheets -> case fields
CSV_ALIASES = {
    "id": ("id", "wo", "work order", "work_order", "wo no", "작업지시", "작업번호", "번호"),
    "title": ("title", "subject", "제목", "건명"),
    "symptom": ("symptom", "problem", "description", "complaint", "현상", "증상", "고장내용", "고장 내용", "내용"),
    "cause": ("cause", "root cause", "원인", "고장원인"),
    "action": ("action", "remedy", "work done", "repair", "조치", "조치내용", "조치 내용", "수리내용"),
    "asset": ("asset", "equipment", "machine", "설비", "설비명", "장비"),
    "author": ("author", "technician", "worker", "작업자", "담당자", "정비원"),
    "parts": ("parts", "spare parts", "부품", "사용부품", "자재"),
    "repair_min": ("repair_min", "time to repair", "minutes", "수리시간", "소요시간(분)", "소요시간"),
    "outcome": ("outcome", "result", "결과"),
    "language": ("language", "lang", "언어"),
}


class KnowHow:
    """A plant's know-how: ``location`` is a folder or a ``postgresql://`` URL."""

    def __init__(self, location: str, *, glossary: Glossary | None = None, analyser_name: str = "bigram",
                 weights: dict[str, float] | None = None, word_index: bool | None = None) -> None:
        self.store = CaseStore(location)
        self.index = CaseIndex(glossary or Glossary(), analyser_name=analyser_name, weights=weights,
                               word_index=word_index)
        self.lock = threading.RLock()
        self.errors = 0
        self._masker: VocabularyMasker | None = None
        self._masker_id: str | None = None
        cases = self.store.all_cases(with_embeddings=True)
        if cases:
            embs = [c.pop("embedding") for c in cases]
            new = self.index.add_many(cases, embs)
            for c, e, ne in zip(cases, embs, new, strict=True):
                if e is None:  # stored before it had one (imported without the model): keep it now
                    self.store.db.execute("UPDATE kh_cases SET embedding = ? WHERE id = ?", (ne.tobytes(), c["id"]))
        self.index.feedback = self.store.feedback_totals()

    @classmethod
    def for_plant(cls, plant: Any) -> KnowHow:
        """The know-how base beside a plant's data: the PostgreSQL historian's database when the
        plant uses one, else ``data/knowhow`` under the plant's folder."""
        return cls(plant_location(plant), glossary=plant_glossary(plant))

    def close(self) -> None:
        """Close the case store."""
        self.store.close()

    # -- recording ------------------------------------------------------------------------------
    def record(self, fields: dict[str, Any], user: str, *, case_id: str | None = None, state: str = "draft",
               audit: bool = True) -> dict[str, Any]:
        """A new case by ``user`` (stored under their pseudonym)."""
        fields = dict(fields)
        if not fields.get("language"):
            fields["language"] = detect_language(" ".join(str(fields.get(k) or "") for k in TEXT_FIELDS))
        author = self.store.pseudonym(user)
        with self.lock:
            emb = self.index.encode_case(fields)
            case = self.store.create(fields, author, case_id=case_id, embedding=emb, state=state)
            self.index.add(case, emb)
        if audit:
            self.store.audit(author, "case.create", case["id"], {"state": state})
        return case

    def edit(self, case_id: str, fields: dict[str, Any], user: str) -> dict[str, Any]:
        """Change fields of case ``case_id`` as ``user`` (a new version; an approved case returns to draft)."""
        with self.lock:
            cur = self.store.get(case_id)
            merged = {**cur, **fields}
            emb = self.index.encode_case(merged)
            case = self.store.update(case_id, fields, self.store.pseudonym(user), embedding=emb)
            self.index.add(case, emb)
        self.store.audit(self.store.pseudonym(user), "case.edit", case_id, {"version": case["version"]})
        return case

    def approve(self, case_id: str, user: str) -> dict[str, Any]:
        """Approve a draft: ``user`` (an approver) must not be its author, nor have edited any
        version since its last approval (an edit by an engineer or approver returns it to draft:
        its text is then partly theirs)."""
        with self.lock:
            case = self.store.get(case_id)
            approver = self.store.pseudonym(user)
            if case["author"] == approver:
                raise i18n.error(PermissionError, "knowhow.err.approve_own")
            if case["state"] == "approved":
                raise i18n.error(CaseError, "knowhow.err.approved_already", cid=case_id, version=case["version"])
            versions = self.store.versions(case_id)
            last = max((v["version"] for v in versions if v["state"] == "approved"), default=0)
            if any(v["editor"] == approver for v in versions if v["version"] > last):
                raise i18n.error(PermissionError, "knowhow.err.approve_own_edit")
            case = self.store.set_state(case_id, "approved", approver)
            self.index.set_state(case_id, "approved")
        self.store.audit(approver, "case.approve", case_id, {"version": case["version"]})
        return case

    def add_snapshot(self, event: dict[str, Any], historian: Any = None) -> dict[str, Any]:
        """The symptom snapshot of an alarm event, with the historian window around it."""
        window: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if historian is not None:
            data = event.get("data") or {}
            tags = [t for t in data.get("tags") or [] if isinstance(t, str)]
            t0 = int(event.get("ts") or 0)
            win = data.get("window")
            start = int(win[0]) if isinstance(win, list) and win else t0 - WINDOW_BEFORE_NS
            end = int(event.get("end_ts") or (int(win[1]) if isinstance(win, list) and len(win) > 1 else t0))
            end = max(end, t0) + WINDOW_AFTER_NS
            if tags:
                for path, s in historian.query(tags[:24], max(0, start), end).items():
                    if len(s):
                        window[path] = (np.asarray(s.ts), np.asarray(s.value))
        return snapshot_from_event(event, window)

    def prefill(self, event: dict[str, Any], historian: Any = None) -> dict[str, Any]:
        """A new case's fields from an alarm or event: asset, signals, window and its snapshot."""
        snap = self.add_snapshot(event, historian)
        names = list(snap["signals"])
        return {"asset": event.get("source") or "", "tags": names, "event_id": event.get("id"),
                "symptom": event.get("message") or "", "snapshot": snap}

    # -- finding --------------------------------------------------------------------------------
    def search(self, text: str, *, asset: str = "", top: int = 5, snapshot: dict[str, Any] | None = None,
               states: tuple[str, ...] | None = None, record_gap: bool = True) -> list[dict[str, Any]]:
        """The best cases for ``text`` (and ``snapshot``, ``asset``); a search without a good answer is kept
        as a gap."""
        results = self.index.search(text, snapshot=snapshot, asset=asset, top=top, states=states)
        best = results[0]["confidence"] if results else 0.0
        if record_gap and (text or "").strip() and best < GAP_CONFIDENCE:
            self.store.add_gap(text, asset, best, "no case" if not results else "low confidence")
        return results

    def suggest(self, event: dict[str, Any], historian: Any = None, top: int = 3) -> list[dict[str, Any]]:
        """Approved cases for an alarm: its signal pattern, its asset and its message."""
        snap = self.add_snapshot(event, historian)
        text = _alarm_text(event, snap)
        return self.index.search(text, snapshot=snap, asset=event.get("source") or "", top=top,
                                 states=("approved",))

    def feedback(self, case_id: str, helpful: bool, context: dict[str, Any] | None = None) -> dict[str, Any]:
        """Count whether case ``case_id`` helped; an unhelpful answer to a query is kept as a gap."""
        ctx = {k: v for k, v in (context or {}).items() if k in ("query", "event_id", "asset")}
        self.store.add_feedback(case_id, bool(helpful), ctx)
        totals = self.store.feedback_totals()
        self.index.feedback = totals
        if not helpful and ctx.get("query"):
            self.store.add_gap(str(ctx["query"]), str(ctx.get("asset") or ""), 0.0, "not helpful")
        h, u = totals.get(case_id, (0, 0))
        return {"id": case_id, "helpful": h, "not_helpful": u}

    # -- sharing ----------------------------------------------------------------------------------
    def known_names(self) -> list[str]:
        """The real names of authors who consented to be named (the masker keeps them out of shared text)."""
        rows = self.store.db.execute("SELECT real_name FROM kh_authors WHERE real_name IS NOT NULL")
        return [r[0] for r in rows if r[0]]

    def masker(self) -> VocabularyMasker:
        """The masker of this plant: the one learnt from its labelled text (:meth:`learn_masker`, kept in
        the case store) when there is one, else the generic one. Read again when another process stores a new one."""
        ident = self.store.masker_id()
        if ident != self._masker_id:
            self._masker = self.store.masker() if ident else None
            self._masker_id = ident
        return self._masker or default_masker()

    def learn_masker(self, texts: list[list[tuple[str, bool]]], actor: str, *, folds: int = FIT_FOLDS,
                     source: str = "") -> dict[str, Any]:
        """Adapt the masker to this plant's labelled text (each text a list of (token, is sensitive)):
        options by cross-validation, words from all texts (:func:`~axline.knowhow.mask.fit_masker`); the
        case store keeps it and every shared case is masked with it from then on (audited). Returns the report."""
        src = source or "-"
        if len(texts) < 2 * folds:
            raise i18n.error(CaseError, "knowhow.err.masker_few_texts", path=src, n=len(texts), min=2 * folds)
        if not any(s for t in texts for _, s in t):
            raise i18n.error(CaseError, "knowhow.err.masker_no_sensitive", path=src)
        masker, report = fit_masker(texts, folds=folds)
        with self.lock:
            self.store.set_masker(masker.to_json())
        self.store.audit(actor, "masker.learn", source or "masker", {
            "texts": report["texts"], "sensitive_tokens": report["sensitive_tokens"],
            "options": report["chosen"]["options"], "cross_validation": report["chosen"]["cross_validation"]})
        return report

    def forget_masker(self, actor: str) -> bool:
        """Go back to the generic masker (audited); whether the store held a plant's masker."""
        had = self.store.masker_id() is not None
        with self.lock:
            self.store.set_masker(None)
        self.store.audit(actor, "masker.forget", "masker", {"had_one": had})
        return had

    def shared(self, case: dict[str, Any], *, admin: bool = False, names: Iterable[str] = ()) -> dict[str, Any]:
        """A case as it leaves the base: free text masked (with :meth:`masker`); the author's real name
        only for admins and only with the author's consent."""
        known = list(names) + self.known_names()
        masker = self.masker()
        out = dict(case)
        out.pop("embedding", None)
        masked = 0
        for k in TEXT_FIELDS:
            out[k], n = mask_text(out.get(k) or "", known, masker)
            masked += n
        out["parts"] = [mask_text(p, known, masker)[0] for p in out.get("parts") or []]
        out["masked"] = masked
        author = self.store.author(case.get("author") or "")
        out["author"] = case.get("author")
        if admin and author["consent"]:
            out["author_name"] = author["real_name"]
        return out

    # -- one author's data --------------------------------------------------------------------------
    def export_author(self, who: str, actor: str) -> dict[str, Any]:
        """Everything kept about author ``who``: cases, versions, photos and consent (audited)."""
        pseudo = self.store.resolve_author(who)
        cases = [self.shared(c) for c in self.store.author_cases(pseudo)]
        for c in cases:
            c["versions"] = len(self.store.versions(c["id"]))
            c["photos"] = self.store.photos(c["id"])
        out = {"author": pseudo, "consent": self.store.author(pseudo)["consent"],
               "consent_log": self.store.consent_log(pseudo), "cases": cases}
        self.store.audit(actor, "author.export", pseudo, {"cases": len(cases)})
        return out

    def delete_author(self, who: str, actor: str) -> dict[str, Any]:
        """Delete author ``who`` and their cases (audited)."""
        pseudo = self.store.resolve_author(who)
        with self.lock:
            ids = self.store.delete_author(pseudo)
            for cid in ids:
                self.index.remove(cid)
                self.index.feedback.pop(cid, None)
        self.store.audit(actor, "author.delete", pseudo, {"cases": len(ids)})
        return {"author": pseudo, "deleted_cases": len(ids)}

    def set_consent(self, user: str, given: bool) -> dict[str, Any]:
        """Record whether ``user`` consents to be named on their cases (audited)."""
        out = self.store.set_consent(user, given)
        self.store.audit(out["pseudonym"], "author.consent", out["pseudonym"], {"given": bool(given)})
        return out

    # -- import -----------------------------------------------------------------------------------
    def import_rows(self, rows: list[dict[str, Any]], actor: str, *, default_author: str = "import",
                    require_id: bool = False) -> dict[str, Any]:
        """Cases from old work orders: each row a dict of case fields. Rows with errors are
        reported by number and skipped; the good ones are stored."""
        if len(rows) > MAX_IMPORT_ROWS:
            raise i18n.error(CaseError, "knowhow.err.import_rows", n=len(rows), max=MAX_IMPORT_ROWS)
        good: list[tuple[dict[str, Any], str, str | None]] = []
        errors: list[str] = []
        seen: set[str] = set()
        for n, row in enumerate(rows, 1):
            f = {k: row.get(k) for k in IMPORT_FIELDS if row.get(k) not in (None, "")}
            cid = str(f.pop("id")) if "id" in f else None
            if require_id and not cid:
                errors.append(f"row {n}: id is required")
                continue
            if cid is not None and (cid in seen or cid in self.index.pos):
                errors.append(f"row {n}: id {cid} appears twice")
                continue
            if not f.get("symptom"):
                errors.append(f"row {n}: symptom is required")
                continue
            if not f.get("language"):
                f["language"] = detect_language(" ".join(str(f.get(k) or "") for k in TEXT_FIELDS))
            try:
                CaseStore._check(f)
            except CaseError as e:
                errors.append(f"row {n}: {e}")
                continue
            if cid:
                seen.add(cid)
            good.append((f, str(row.get("author") or default_author), cid))
        embs = self.index.encode_texts([CaseIndex.case_text(f) for f, _, _ in good]) if good else []
        ids = []
        pseudos: dict[str, str] = {}
        items = []
        for (f, author, cid), emb in zip(good, embs, strict=True):
            pseudo = pseudos.get(author) or pseudos.setdefault(author, self.store.pseudonym(author))
            items.append((f, pseudo, cid, emb))
        with self.lock:
            for k in range(0, len(items), 1000):  # one transaction per thousand cases
                cases = self.store.create_many(items[k : k + 1000], editor=actor)
                for case, (_, _, _, emb) in zip(cases, items[k : k + 1000], strict=True):
                    self.index.add(case, emb)
                    ids.append(case["id"])
        self.store.audit(actor, "case.import", f"{len(ids)} cases", {"errors": len(errors)})
        return {"imported": len(ids), "errors": errors[:100], "error_count": len(errors)}


def _json_lines(path: str) -> Iterator[tuple[int, Any]]:
    """(line number, value) for each non-blank line of a JSON-lines file; a bad line raises with its number."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except json.JSONDecodeError as e:
                raise i18n.error(CaseError, "knowhow.err.import_not_json", path=path, n=n, error=e.msg) from None


def read_jsonl(path: str) -> list[dict[str, Any]]:
    """The rows of a JSON-lines file; a bad line raises with its line number."""
    rows = []
    for n, obj in _json_lines(path):
        if not isinstance(obj, dict):
            raise i18n.error(CaseError, "knowhow.err.import_not_object", path=path, n=n)
        rows.append(obj)
    return rows


def read_labelled(path: str) -> list[list[tuple[str, bool]]]:
    """Labelled text for :meth:`KnowHow.learn_masker`: each text a list of (token, is sensitive).

    ``.jsonl``/``.json``: one text a line, ``{"tokens": [...], "sensitive": [true/false, ...]}``. Any
    other file: one token a line, then a tab and its label (``<sensitive>`` marks a name; anything else,
    or no label, does not), a blank line between texts. A bad line raises with its line number."""
    texts: list[list[tuple[str, bool]]] = []
    if path.lower().endswith((".jsonl", ".json")):
        for n, obj in _json_lines(path):
            toks = obj.get("tokens") if isinstance(obj, dict) else None
            sens = obj.get("sensitive") if isinstance(obj, dict) else None
            if not (isinstance(toks, list) and isinstance(sens, list) and len(toks) == len(sens) and toks
                    and all(isinstance(t, str) and t.strip() and not any(c.isspace() for c in t) for t in toks)
                    and all(isinstance(x, bool) for x in sens)):
                raise i18n.error(CaseError, "knowhow.err.masker_line", path=path, n=n)
            texts.append(list(zip(toks, sens, strict=True)))
        return texts
    cur: list[tuple[str, bool]] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                if cur:
                    texts.append(cur)
                    cur = []
                continue
            tok, _, label = line.partition("\t")
            if not tok.strip() or any(c.isspace() for c in tok.strip()):
                raise i18n.error(CaseError, "knowhow.err.masker_line", path=path, n=n)
            cur.append((tok.strip(), label.strip() == "<sensitive>"))
    if cur:
        texts.append(cur)
    return texts


def read_table(path: str) -> list[dict[str, Any]]:
    """Rows of a CSV (UTF-8 or CP949, as Korean Excel writes it) or an .xlsx work-order list, with
    column names mapped to case fields (Korean and English headers)."""
    if path.lower().endswith(".xlsx"):
        try:
            import openpyxl
        except ImportError:
            raise i18n.error(CaseError, "knowhow.err.xlsx_needs_openpyxl") from None
        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        it = wb.active.iter_rows(values_only=True)
        header = [str(h or "").strip() for h in next(it, [])]
        raw = [{header[i]: ("" if v is None else str(v)) for i, v in enumerate(r) if i < len(header)} for r in it]
    else:
        data = open(path, "rb").read()
        for enc in ("utf-8-sig", "cp949"):
            try:
                text = data.decode(enc)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise i18n.error(CaseError, "knowhow.err.csv_encoding", path=path)
        raw = list(csv.DictReader(io.StringIO(text)))
    if not raw:
        return []
    mapping: dict[str, str] = {}
    for col in raw[0]:
        key = (col or "").strip().lower()
        for field, names in CSV_ALIASES.items():
            if key in names and field not in mapping.values():
                mapping[col] = field
                break
    if "symptom" not in mapping.values():
        raise i18n.error(CaseError, "knowhow.err.csv_no_symptom", path=path, names=", ".join(CSV_ALIASES["symptom"][:6]),
                         found=", ".join(raw[0]))
    return [{mapping[c]: v for c, v in r.items() if c in mapping} for r in raw]


def plant_location(plant: Any) -> str:
    """Where the plant keeps its case base: its PostgreSQL DSN or ``data/knowhow``."""
    spec = getattr(plant, "historian", None)
    if isinstance(spec, str) and spec.startswith(("postgresql://", "postgres://")):
        return spec
    if isinstance(spec, dict) and spec.get("backend") == "postgresql" and spec.get("dsn"):
        return spec["dsn"]
    return os.path.join(plant.base_dir, "data", "knowhow")


def plant_glossary(plant: Any) -> Glossary:
    """The plant's glossary (``knowhow/glossary.yaml``) on top of the built-in one."""
    path = os.path.join(plant.base_dir, "knowhow", "glossary.yaml")
    if not os.path.exists(path):
        return Glossary()
    import yaml

    with open(path, encoding="utf-8") as f:
        extra = yaml.safe_load(f) or {}
    if not isinstance(extra, dict):
        raise i18n.error(CaseError, "knowhow.err.glossary_format", path=path)
    return Glossary(extra)


def _alarm_text(event: dict[str, Any], snap: dict[str, Any]) -> str:
    """Words for an alarm: its signals with the direction they moved (``coolant flow drop``)."""
    parts = []
    for name, s in (snap.get("signals") or {}).items():
        move = s.get("move")
        direction = "" if move is None else ("drop" if move < -0.5 else "rise" if move > 0.5 else "")
        parts.append(f"{name.replace('_', ' ')} {direction}".strip())
    code = event.get("code") or ""
    if code == "sensor.stuck":
        parts.append("sensor frozen value")
    elif code == "sensor.bad_quality":
        parts.append("sensor no signal")
    return ", ".join(parts[:8])
