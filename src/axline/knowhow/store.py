"""The case base: cases with their version history, authors and consent, photos, feedback, the gap
list and an audit trail; in SQLite beside the plant's data (default) or in the plant's PostgreSQL.

Every method is blocking: the web app calls it from a worker thread. One lock serialises access to
the connection. Tables are prefixed ``kh_`` so that they sit beside the historian's in one database.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import sqlite3
import threading
import time
import uuid
from typing import Any

import numpy as np

from axline import i18n

STATES = ("draft", "approved", "retired")
OUTCOMES = ("fixed", "not_fixed", "escalated", "")
MAX_GAPS = 1000
MAX_FEEDBACK = 100_000
MAX_AUDIT = 200_000
MAX_PHOTO_BYTES = 5 * 2**20
MAX_PHOTOS_PER_CASE = 8
TEXT_FIELDS = ("title", "symptom", "cause", "action")
MAX_TEXT = 4000

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS kh_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS kh_cases (id TEXT PRIMARY KEY, version INTEGER NOT NULL, state TEXT NOT NULL, "
    "asset TEXT NOT NULL DEFAULT '', tags TEXT NOT NULL DEFAULT '[]', title TEXT NOT NULL DEFAULT '', "
    "symptom TEXT NOT NULL DEFAULT '', cause TEXT NOT NULL DEFAULT '', action TEXT NOT NULL DEFAULT '', "
    "outcome TEXT NOT NULL DEFAULT '', parts TEXT NOT NULL DEFAULT '[]', repair_min REAL, "
    "language TEXT NOT NULL DEFAULT 'en', author TEXT NOT NULL DEFAULT '', created_ts BIGINT NOT NULL, "
    "updated_ts BIGINT NOT NULL, approved_by TEXT, approved_ts BIGINT, event_id BIGINT, "
    "snapshot TEXT NOT NULL DEFAULT '{}', links TEXT NOT NULL DEFAULT '[]', embedding BLOB)",
    "CREATE TABLE IF NOT EXISTS kh_versions (case_id TEXT NOT NULL, version INTEGER NOT NULL, ts BIGINT NOT NULL, "
    "editor TEXT NOT NULL, state TEXT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (case_id, version))",
    "CREATE TABLE IF NOT EXISTS kh_photos (id TEXT PRIMARY KEY, case_id TEXT NOT NULL, name TEXT NOT NULL, "
    "mime TEXT NOT NULL, data BLOB NOT NULL)",
    "CREATE TABLE IF NOT EXISTS kh_authors (pseudonym TEXT PRIMARY KEY, real_name TEXT, consent INTEGER NOT NULL "
    "DEFAULT 0, consent_ts BIGINT)",
    "CREATE TABLE IF NOT EXISTS kh_consent_log (id TEXT PRIMARY KEY, pseudonym TEXT NOT NULL, ts BIGINT NOT NULL, "
    "given INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS kh_feedback (id TEXT PRIMARY KEY, case_id TEXT NOT NULL, ts BIGINT NOT NULL, "
    "helpful INTEGER NOT NULL, context TEXT NOT NULL DEFAULT '{}')",
    "CREATE TABLE IF NOT EXISTS kh_gaps (id TEXT PRIMARY KEY, ts BIGINT NOT NULL, query TEXT NOT NULL, "
    "asset TEXT NOT NULL DEFAULT '', best REAL NOT NULL, reason TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS kh_audit (id TEXT PRIMARY KEY, ts BIGINT NOT NULL, actor TEXT NOT NULL, "
    "action TEXT NOT NULL, target TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '{}')",
    "CREATE INDEX IF NOT EXISTS kh_feedback_case ON kh_feedback(case_id)",
    "CREATE INDEX IF NOT EXISTS kh_cases_author ON kh_cases(author)",
]

CASE_COLUMNS = ("id", "version", "state", "asset", "tags", "title", "symptom", "cause", "action", "outcome",
                "parts", "repair_min", "language", "author", "created_ts", "updated_ts", "approved_by",
                "approved_ts", "event_id", "snapshot", "links")
_JSON_COLUMNS = ("tags", "parts", "snapshot", "links")


class CaseError(ValueError):
    """A case or a request about one is not acceptable; the message says what to change."""


class _Db:
    """A thin layer over sqlite3 or psycopg: ``?`` placeholders, one lock, commit per call."""

    def __init__(self, spec: str) -> None:
        self.lock = threading.RLock()
        if spec.startswith(("postgresql://", "postgres://")):
            import psycopg

            self.kind = "postgresql"
            self.conn = psycopg.connect(spec, autocommit=True, connect_timeout=10)
        else:
            self.kind = "sqlite"
            os.makedirs(os.path.dirname(os.path.abspath(spec)), exist_ok=True)
            self.conn = sqlite3.connect(spec, check_same_thread=False, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
        for stmt in _SCHEMA:
            self.execute(stmt.replace("BLOB", "BYTEA") if self.kind == "postgresql" else stmt)

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgresql" else sql

    def execute(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        with self.lock:
            cur = self.conn.execute(self._sql(sql), tuple(params) if params or self.kind == "sqlite" else None)
            try:
                rows = cur.fetchall() if cur.description else []
            finally:
                cur.close()
            return [tuple(r) for r in rows]

    def transaction(self, statements: list[tuple[str, tuple]]) -> None:
        """Run several statements all-or-nothing."""
        with self.lock:
            if self.kind == "sqlite":
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    for sql, params in statements:
                        self.conn.execute(sql, params)
                    self.conn.execute("COMMIT")
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
            else:
                with self.conn.transaction():
                    for sql, params in statements:
                        self.conn.execute(self._sql(sql), params)

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def _now() -> int:
    return time.time_ns()


def _blob(b: Any) -> bytes | None:
    if b is None:
        return None
    return bytes(b)


class CaseStore:
    """Cases and everything about them. ``location`` is a folder (SQLite file ``knowhow.db`` in it)
    or a ``postgresql://`` URL (the plant's historian database)."""

    def __init__(self, location: str) -> None:
        if not isinstance(location, str) or not location:
            raise i18n.error(CaseError, "knowhow.err.store_location")
        self.location = location
        if location.startswith(("postgresql://", "postgres://")):
            self.db = _Db(location)
        else:
            if os.path.exists(location) and not os.path.isdir(location):
                raise i18n.error(CaseError, "knowhow.err.store_is_file", location=location)
            self.db = _Db(os.path.join(location, "knowhow.db"))
        rows = self.db.execute("SELECT value FROM kh_meta WHERE key = 'secret'")
        if rows:
            self._secret = bytes.fromhex(rows[0][0])
        else:
            self._secret = secrets.token_bytes(32)
            self.db.execute("INSERT INTO kh_meta (key, value) VALUES (?, ?)", ("secret", self._secret.hex()))
            rows = self.db.execute("SELECT value FROM kh_meta WHERE key = 'secret'")  # a concurrent first open
            self._secret = bytes.fromhex(rows[0][0])

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    # -- the plant's masker (kh_meta: its JSON and a short id that changes with it) ----------------------
    def masker_id(self) -> str | None:
        """The id of the stored masker (changes whenever a new one is stored), or None when there is none."""
        rows = self.db.execute("SELECT value FROM kh_meta WHERE key = 'masker_id'")
        return rows[0][0] if rows else None

    def masker(self) -> Any:
        """The plant's masker (:class:`~axline.knowhow.mask.VocabularyMasker`) or None when none is stored;
        one that cannot be read raises (names would otherwise be shown unmasked)."""
        from axline.knowhow.mask import VocabularyMasker

        rows = self.db.execute("SELECT value FROM kh_meta WHERE key = 'masker'")
        if not rows:
            return None
        try:
            return VocabularyMasker.from_json(json.loads(rows[0][0]))
        except (ValueError, TypeError) as e:
            raise i18n.error(CaseError, "knowhow.err.masker_stored", error=e) from None

    def set_masker(self, raw: dict[str, Any] | None) -> None:
        """Store the plant's masker (as :meth:`VocabularyMasker.to_json` writes it); None removes it."""
        up = "INSERT INTO kh_meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        if raw is None:
            self.db.transaction([("DELETE FROM kh_meta WHERE key IN ('masker', 'masker_id')", ())])
            return
        text = json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
        self.db.transaction([(up, ("masker", text)), (up, ("masker_id", f"{_now()}-{secrets.token_hex(4)}"))])

    # -- authors: pseudonyms and consent ------------------------------------------------------------
    def pseudonym(self, real_name: str) -> str:
        """The stable pseudonym of a user name (a keyed hash: the name itself is not stored)."""
        if not isinstance(real_name, str) or not real_name.strip():
            raise i18n.error(CaseError, "knowhow.err.author_no_name")
        digest = hmac.new(self._secret, real_name.strip().encode("utf-8"), hashlib.sha256).hexdigest()
        pseudo = f"W-{digest[:8]}"
        self.db.execute(
            "INSERT INTO kh_authors (pseudonym, consent) VALUES (?, 0) ON CONFLICT (pseudonym) DO NOTHING", (pseudo,)
        )
        return pseudo

    def set_consent(self, real_name: str, given: bool) -> dict[str, Any]:
        """Record the author's consent to show their real name (to admins); withdrawing erases it."""
        pseudo = self.pseudonym(real_name)
        ts = _now()
        self.db.transaction([
            ("UPDATE kh_authors SET real_name = ?, consent = ?, consent_ts = ? WHERE pseudonym = ?",
             (real_name.strip() if given else None, 1 if given else 0, ts, pseudo)),
            ("INSERT INTO kh_consent_log (id, pseudonym, ts, given) VALUES (?, ?, ?, ?)",
             (uuid.uuid4().hex, pseudo, ts, 1 if given else 0)),
        ])
        return {"pseudonym": pseudo, "consent": bool(given), "ts": ts}

    def author(self, pseudo: str) -> dict[str, Any]:
        """Author ``pseudo``: pseudonym, real name (only with consent) and consent."""
        rows = self.db.execute("SELECT pseudonym, real_name, consent, consent_ts FROM kh_authors WHERE pseudonym = ?",
                               (pseudo,))
        if not rows:
            return {"pseudonym": pseudo, "real_name": None, "consent": False, "consent_ts": None}
        p, name, consent, ts = rows[0]
        return {"pseudonym": p, "real_name": name if consent else None, "consent": bool(consent), "consent_ts": ts}

    def consent_log(self, pseudo: str) -> list[dict[str, Any]]:
        """Every consent change of author ``pseudo``, oldest first."""
        rows = self.db.execute("SELECT ts, given FROM kh_consent_log WHERE pseudonym = ? ORDER BY ts", (pseudo,))
        return [{"ts": ts, "given": bool(g)} for ts, g in rows]

    def resolve_author(self, who: str) -> str:
        """A pseudonym from a pseudonym or a user name."""
        if who.startswith("W-") and self.db.execute("SELECT 1 FROM kh_authors WHERE pseudonym = ?", (who,)):
            return who
        return self.pseudonym(who)

    # -- cases ----------------------------------------------------------------------------------------
    @staticmethod
    def _check(fields: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k in TEXT_FIELDS:
            v = fields.get(k, "")
            if v is None:
                v = ""
            if not isinstance(v, str):
                raise i18n.error(CaseError, "knowhow.err.field_not_text", field=k, got=type(v).__name__)
            if len(v) > MAX_TEXT:
                raise i18n.error(CaseError, "knowhow.err.field_too_long", field=k, n=len(v), max=MAX_TEXT)
            out[k] = v.strip()
        if not out["symptom"] and not out["title"]:
            raise i18n.error(CaseError, "knowhow.err.no_symptom")
        outcome = fields.get("outcome") or ""
        if outcome not in OUTCOMES:
            raise i18n.error(CaseError, "knowhow.err.bad_outcome", got=repr(outcome))
        out["outcome"] = outcome
        asset = fields.get("asset") or ""
        if not isinstance(asset, str) or len(asset) > 512:
            raise i18n.error(CaseError, "knowhow.err.bad_asset")
        out["asset"] = asset.strip().strip("/")
        for k in ("tags", "parts", "links"):
            v = fields.get(k) or []
            if isinstance(v, str):
                v = [p.strip() for p in v.split(",") if p.strip()]
            if not isinstance(v, list) or not all(isinstance(p, str) for p in v) or len(v) > 100:
                raise i18n.error(CaseError, "knowhow.err.bad_list", field=k)
            out[k] = v
        rm = fields.get("repair_min")
        if rm in (None, ""):
            out["repair_min"] = None
        else:
            try:
                out["repair_min"] = float(rm)
            except (TypeError, ValueError):
                raise i18n.error(CaseError, "knowhow.err.repair_not_number", got=repr(rm)) from None
            if not 0 <= out["repair_min"] <= 100_000:
                raise i18n.error(CaseError, "knowhow.err.repair_range", got=repr(rm))
        lang = fields.get("language") or ""
        if lang not in ("", "ko", "en"):
            raise i18n.error(CaseError, "knowhow.err.bad_language", got=repr(lang))
        out["language"] = lang
        snap = fields.get("snapshot") or {}
        if not isinstance(snap, dict):
            raise i18n.error(CaseError, "knowhow.err.snapshot_not_object")
        if len(json.dumps(snap)) > 2_000_000:
            raise i18n.error(CaseError, "knowhow.err.snapshot_large")
        out["snapshot"] = snap
        eid = fields.get("event_id")
        if eid is not None and (isinstance(eid, bool) or not isinstance(eid, int)):
            raise i18n.error(CaseError, "knowhow.err.bad_event_id", got=repr(eid))
        out["event_id"] = eid
        return out

    def create(self, fields: dict[str, Any], author_pseudo: str, *, case_id: str | None = None,
               embedding: np.ndarray | None = None, state: str = "draft", editor: str | None = None) -> dict:
        """Store one new case by ``author_pseudo``; returns it."""
        return self.create_many([(fields, author_pseudo, case_id, embedding)], state=state, editor=editor)[0]

    def create_many(self, items: list[tuple[dict[str, Any], str, str | None, np.ndarray | None]], *,
                    state: str = "draft", editor: str | None = None) -> list[dict[str, Any]]:
        """New cases, all or none, in one transaction: (fields, author pseudonym, id or None, embedding)."""
        if state not in STATES:
            raise i18n.error(CaseError, "knowhow.err.bad_state", states=", ".join(STATES))
        rows, stmts, ids = [], [], set()
        for fields, author_pseudo, case_id, embedding in items:
            f = self._check(fields)
            cid = case_id or uuid.uuid4().hex[:12]
            if not isinstance(cid, str) or not cid or len(cid) > 128:
                raise i18n.error(CaseError, "knowhow.err.bad_id", got=repr(cid))
            if cid in ids or self.db.execute("SELECT 1 FROM kh_cases WHERE id = ?", (cid,)):
                raise i18n.error(CaseError, "knowhow.err.id_exists", cid=cid)
            ids.add(cid)
            ts = _now()
            row = {**f, "id": cid, "version": 1, "state": state, "author": author_pseudo, "created_ts": ts,
                   "updated_ts": ts, "approved_by": None, "approved_ts": None}
            stmts += self._statements(row, embedding, editor or author_pseudo, insert=True)
            rows.append(row)
        self.db.transaction(stmts)
        return [{c: r[c] for c in CASE_COLUMNS} for r in rows]

    def update(self, cid: str, fields: dict[str, Any], editor: str, *, embedding: np.ndarray | None = None) -> dict:
        """A new version of a case; an approved case goes back to draft when its text changes."""
        cur = self.get(cid)
        merged = {k: cur[k] for k in CASE_COLUMNS if k in cur}
        merged.update({k: v for k, v in fields.items() if k in CASE_COLUMNS})
        f = self._check(merged)
        row = {**cur, **f, "version": cur["version"] + 1, "updated_ts": _now(), "state": "draft",
               "approved_by": None, "approved_ts": None}
        self._write(row, embedding, editor, insert=False)
        return self.get(cid)

    def set_state(self, cid: str, state: str, editor: str) -> dict:
        """Move case ``cid`` to ``state`` (a new version by ``editor``)."""
        if state not in STATES:
            raise i18n.error(CaseError, "knowhow.err.bad_state", states=", ".join(STATES))
        cur = self.get(cid)
        ts = _now()
        row = {**cur, "version": cur["version"] + 1, "state": state, "updated_ts": ts,
               "approved_by": editor if state == "approved" else cur.get("approved_by"),
               "approved_ts": ts if state == "approved" else cur.get("approved_ts")}
        self._write(row, None, editor, insert=False, keep_embedding=True)
        return self.get(cid)

    def _write(self, row: dict, embedding: np.ndarray | None, editor: str, *, insert: bool,
               keep_embedding: bool = False) -> None:
        self.db.transaction(self._statements(row, embedding, editor, insert=insert, keep_embedding=keep_embedding))

    def _statements(self, row: dict, embedding: np.ndarray | None, editor: str, *, insert: bool,
                    keep_embedding: bool = False) -> list[tuple[str, tuple]]:
        vals = [json.dumps(row[c], ensure_ascii=False) if c in _JSON_COLUMNS else row[c] for c in CASE_COLUMNS]
        body = json.dumps({c: row[c] for c in CASE_COLUMNS}, ensure_ascii=False)
        emb = None if embedding is None else np.asarray(embedding, dtype=np.float32).tobytes()
        stmts: list[tuple[str, tuple]] = []
        if insert:
            cols = ", ".join(CASE_COLUMNS) + ", embedding"
            marks = ", ".join("?" * (len(CASE_COLUMNS) + 1))
            stmts.append((f"INSERT INTO kh_cases ({cols}) VALUES ({marks})", (*vals, emb)))
        else:
            sets = ", ".join(f"{c} = ?" for c in CASE_COLUMNS[1:])
            params: tuple = (*vals[1:],)
            if not keep_embedding:
                sets += ", embedding = ?"
                params += (emb,)
            stmts.append((f"UPDATE kh_cases SET {sets} WHERE id = ?", (*params, row["id"])))
        stmts.append(("INSERT INTO kh_versions (case_id, version, ts, editor, state, body) VALUES (?, ?, ?, ?, ?, ?)",
                      (row["id"], row["version"], row["updated_ts"], editor, row["state"], body)))
        return stmts

    @staticmethod
    def _row(r: tuple) -> dict[str, Any]:
        d = dict(zip(CASE_COLUMNS, r[: len(CASE_COLUMNS)], strict=True))
        for c in _JSON_COLUMNS:
            d[c] = json.loads(d[c]) if d[c] else ([] if c != "snapshot" else {})
        return d

    def get(self, cid: str) -> dict[str, Any]:
        """Case ``cid``; ``KeyError`` when there is none."""
        rows = self.db.execute(f"SELECT {', '.join(CASE_COLUMNS)} FROM kh_cases WHERE id = ?", (cid,))
        if not rows:
            raise KeyError(f"case {cid} does not exist")
        return self._row(rows[0])

    def all_cases(self, with_embeddings: bool = False) -> list[dict[str, Any]]:
        """Every case, oldest first (with its embedding when asked)."""
        cols = ", ".join(CASE_COLUMNS) + (", embedding" if with_embeddings else "")
        out = []
        for r in self.db.execute(f"SELECT {cols} FROM kh_cases ORDER BY created_ts"):
            d = self._row(r)
            if with_embeddings:
                b = _blob(r[-1])
                d["embedding"] = np.frombuffer(b, dtype=np.float32).copy() if b else None
            out.append(d)
        return out

    def versions(self, cid: str) -> list[dict[str, Any]]:
        """Every version of case ``cid``, oldest first."""
        rows = self.db.execute("SELECT version, ts, editor, state, body FROM kh_versions WHERE case_id = ? "
                               "ORDER BY version", (cid,))
        return [{"version": v, "ts": ts, "editor": ed, "state": st, "case": json.loads(body)}
                for v, ts, ed, st, body in rows]

    def count(self) -> int:
        """How many cases the store holds."""
        return int(self.db.execute("SELECT COUNT(*) FROM kh_cases")[0][0])

    def stats(self) -> dict[str, Any]:
        """Aggregate figures only (never per author)."""
        by_state = dict(self.db.execute("SELECT state, COUNT(*) FROM kh_cases GROUP BY state"))
        fb = self.db.execute("SELECT helpful, COUNT(*) FROM kh_feedback GROUP BY helpful")
        gaps = self.db.execute("SELECT COUNT(*) FROM kh_gaps")[0][0]
        return {"cases": sum(by_state.values()), "by_state": by_state,
                "feedback": {("helpful" if h else "not_helpful"): n for h, n in fb}, "gaps": int(gaps)}

    # -- photos -------------------------------------------------------------------------------------
    def add_photo(self, cid: str, name: str, mime: str, data: bytes) -> str:
        """Attach a JPEG, PNG or WebP photo to case ``cid``; returns its id."""
        self.get(cid)
        if mime not in ("image/jpeg", "image/png", "image/webp"):
            raise i18n.error(CaseError, "knowhow.err.photo_type", got=repr(mime))
        if len(data) > MAX_PHOTO_BYTES:
            raise i18n.error(CaseError, "knowhow.err.photo_large", mb=f"{len(data) / 2**20:.1f}", max=MAX_PHOTO_BYTES // 2**20)
        n = self.db.execute("SELECT COUNT(*) FROM kh_photos WHERE case_id = ?", (cid,))[0][0]
        if n >= MAX_PHOTOS_PER_CASE:
            raise i18n.error(CaseError, "knowhow.err.photo_count", cid=cid, n=n, max=MAX_PHOTOS_PER_CASE)
        pid = uuid.uuid4().hex[:12]
        self.db.execute("INSERT INTO kh_photos (id, case_id, name, mime, data) VALUES (?, ?, ?, ?, ?)",
                        (pid, cid, name[:120], mime, data))
        return pid

    def photos(self, cid: str) -> list[dict[str, Any]]:
        """The photos of case ``cid``: id, name and type."""
        rows = self.db.execute("SELECT id, name, mime FROM kh_photos WHERE case_id = ? ORDER BY id", (cid,))
        return [{"id": i, "name": n, "mime": m} for i, n, m in rows]

    def photo(self, pid: str) -> tuple[str, bytes, str]:
        """Photo ``pid`` as (type, bytes, case id); ``KeyError`` when there is none."""
        rows = self.db.execute("SELECT mime, data, case_id FROM kh_photos WHERE id = ?", (pid,))
        if not rows:
            raise KeyError(f"photo {pid} does not exist")
        return rows[0][0], _blob(rows[0][1]) or b"", rows[0][2]

    # -- feedback and gaps -------------------------------------------------------------------------
    def add_feedback(self, cid: str, helpful: bool, context: dict[str, Any]) -> None:
        """Stored without the user: feedback is about cases, never a count per worker."""
        self.get(cid)
        self.db.execute("INSERT INTO kh_feedback (id, case_id, ts, helpful, context) VALUES (?, ?, ?, ?, ?)",
                        (uuid.uuid4().hex, cid, _now(), 1 if helpful else 0, json.dumps(context, ensure_ascii=False)))
        self._trim("kh_feedback", MAX_FEEDBACK)

    def feedback_totals(self) -> dict[str, tuple[int, int]]:
        """Per case: how often it helped and how often not."""
        rows = self.db.execute("SELECT case_id, SUM(helpful), COUNT(*) FROM kh_feedback GROUP BY case_id")
        return {c: (int(h), int(n) - int(h)) for c, h, n in rows}

    def add_gap(self, query: str, asset: str, best: float, reason: str) -> None:
        """Keep a search without a good answer (bounded)."""
        self.db.execute("INSERT INTO kh_gaps (id, ts, query, asset, best, reason) VALUES (?, ?, ?, ?, ?, ?)",
                        (uuid.uuid4().hex, _now(), query[:500], asset or "", float(best), reason))
        self._trim("kh_gaps", MAX_GAPS)

    def gaps(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest searches without a good answer."""
        rows = self.db.execute("SELECT ts, query, asset, best, reason FROM kh_gaps ORDER BY ts DESC LIMIT ?", (limit,))
        return [{"ts": ts, "query": q, "asset": a, "best": b, "reason": r} for ts, q, a, b, r in rows]

    def _trim(self, table: str, keep: int) -> None:
        n = self.db.execute(f"SELECT COUNT(*) FROM {table}")[0][0]
        if n > keep:
            self.db.execute(f"DELETE FROM {table} WHERE id IN (SELECT id FROM {table} ORDER BY ts LIMIT ?)",
                            (int(n - keep),))

    # -- audit ----------------------------------------------------------------------------------------
    def audit(self, actor: str, action: str, target: str, detail: dict[str, Any] | None = None) -> None:
        """Record ``actor``'s ``action`` on ``target`` in the know-how audit log (bounded)."""
        self.db.execute("INSERT INTO kh_audit (id, ts, actor, action, target, detail) VALUES (?, ?, ?, ?, ?, ?)",
                        (uuid.uuid4().hex, _now(), actor, action, target, json.dumps(detail or {}, ensure_ascii=False)))
        self._trim("kh_audit", MAX_AUDIT)

    def audit_log(self, limit: int = 100) -> list[dict[str, Any]]:
        """The newest entries of the know-how audit log."""
        rows = self.db.execute("SELECT ts, actor, action, target, detail FROM kh_audit ORDER BY ts DESC LIMIT ?",
                               (limit,))
        return [{"ts": ts, "actor": a, "action": ac, "target": t, "detail": json.loads(d)} for ts, a, ac, t, d in rows]

    # -- one author's data ----------------------------------------------------------------------------
    def author_cases(self, pseudo: str) -> list[dict[str, Any]]:
        """The cases of author ``pseudo``, oldest first."""
        rows = self.db.execute(f"SELECT {', '.join(CASE_COLUMNS)} FROM kh_cases WHERE author = ? ORDER BY created_ts",
                               (pseudo,))
        return [self._row(r) for r in rows]

    def delete_author(self, pseudo: str) -> list[str]:
        """Wipe an author's cases (text, versions, photos, embeddings, feedback) and their real name.

        Returns the deleted case ids so that the caller drops them from the search index."""
        ids = [r[0] for r in self.db.execute("SELECT id FROM kh_cases WHERE author = ?", (pseudo,))]
        # versions they edited on other people's cases keep the edit but lose the name
        stmts: list[tuple[str, tuple]] = []
        for cid in ids:
            for table, col in (("kh_versions", "case_id"), ("kh_photos", "case_id"), ("kh_feedback", "case_id"),
                               ("kh_cases", "id")):
                stmts.append((f"DELETE FROM {table} WHERE {col} = ?", (cid,)))
        stmts.append(("UPDATE kh_versions SET editor = 'deleted-author' WHERE editor = ?", (pseudo,)))
        stmts.append(("UPDATE kh_authors SET real_name = NULL, consent = 0 WHERE pseudonym = ?", (pseudo,)))
        if self.db.kind == "postgresql":
            stmts = [(s.replace("?", "%s"), p) for s, p in stmts]
        self.db.transaction(stmts)
        return ids
