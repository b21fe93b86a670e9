"""User accounts and API tokens: who may log in, with which role, and what locks them out.

One JSON file beside the plant's data (``data/security/accounts.json``, mode 0600) holds every
account and token. Passwords are stored as argon2id hashes (argon2-cffi), API tokens as SHA-256 of
their 256-bit random secret; neither is ever stored or logged in clear. The web server and the
``axline users`` command may change the file at the same time: every change takes an exclusive
``flock`` on ``accounts.lock``, re-reads the file, changes it and replaces it atomically; readers
notice a changed file by its size and modification time and reload it.

Every change of role, a disable, a password reset or a removal bumps the account's ``generation``;
a session remembers the generation it was made with and dies when the numbers differ, so the change
takes effect on the very next request.

Password rules (NIST SP 800-63B, OWASP ASVS 5.0 V6.2): at least 8 characters, at most 128, not on
the shipped list of 20,000 common passwords, not the user name; no composition rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gzip
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from axline import i18n
from axline.app.roles import RANK, ROLES, User

log = logging.getLogger(__name__)

MIN_PASSWORD = 8
MAX_PASSWORD = 128
NAME_RE = re.compile(r"^[\w.@-]{1,64}$")
TOKEN_PREFIX = "axl_"
COMMON_PASSWORDS = Path(__file__).resolve().parent.parent / "data" / "common-passwords.txt.gz"

# RFC 9106 "second recommended" profile (argon2id, t=3, m=64 MiB, p=4): argon2-cffi's default.
HASHER = PasswordHasher()


class AccountError(ValueError):
    """A request about accounts that cannot be done; the message says what to do instead."""


@dataclass
class LockPolicy:
    """Lockout per account and throttle per address (both: failures within ``window_s``)."""

    max_failures: int = 5
    window_s: float = 300.0
    lockout_s: float = 300.0
    address_max_failures: int = 20

    def check(self) -> None:
        """Raise ``ValueError`` when a limit is not a positive number."""
        if self.max_failures < 1 or self.address_max_failures < 1:
            raise ValueError("lockout: max_failures must be at least 1")
        if self.window_s <= 0 or self.lockout_s <= 0:
            raise ValueError("lockout: window_s and lockout_s must be positive seconds")


@dataclass
class Account:
    """One user account: name, role, kind (person or service), password hash, lock state."""
    name: str
    role: str
    kind: str = "person"  # "person" (logs in with a password) or "service" (API tokens only)
    hash: str | None = None
    disabled: bool = False
    generation: int = 1
    created: float = field(default_factory=time.time)
    changed: float = field(default_factory=time.time)
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0

    def public(self, now: float | None = None) -> dict[str, Any]:
        """The account as shown to admins: no hash, lock state as of ``now``."""
        now = time.time() if now is None else now
        return {"name": self.name, "role": self.role, "kind": self.kind, "disabled": self.disabled,
                "locked": self.locked_until > now, "locked_until": self.locked_until if self.locked_until > now
                else None, "created": self.created, "changed": self.changed}


@dataclass
class ApiToken:
    """An API token of a service account; only a hash of its secret is kept."""
    id: str
    account: str
    role: str
    hash: str
    created: float
    expires: float
    revoked: bool = False
    creator: str = ""

    def public(self, now: float | None = None) -> dict[str, Any]:
        """The token as listed to admins (never its secret), expiry as of ``now``."""
        now = time.time() if now is None else now
        return {"id": self.id, "account": self.account, "role": self.role, "created": self.created,
                "creator": self.creator, "expires": self.expires, "revoked": self.revoked, "expired": self.expires <= now}


@dataclass
class AuthResult:
    """The answer to a login attempt: ``ok``, the ``reason`` and the user when it succeeded."""
    ok: bool
    reason: str  # ok | bad | locked | disabled | service
    user: User | None = None
    generation: int = 0
    retry_after: int = 0


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The list of common passwords refused as account passwords, lower case (read once)."""
    with gzip.open(COMMON_PASSWORDS, "rt", encoding="utf-8") as f:
        return frozenset(line.strip().lower() for line in f if line.strip())


def check_password(password: Any, name: str = "") -> None:
    """Raise :class:`AccountError` when ``password`` breaks the rules; say which one, in both languages."""
    if not isinstance(password, str):
        raise AccountError(i18n.pair("account.password_not_text"))
    if len(password) < MIN_PASSWORD:
        raise AccountError(i18n.pair("account.password_short", min=MIN_PASSWORD, got=len(password)))
    if len(password) > MAX_PASSWORD:
        raise AccountError(i18n.pair("account.password_long", max=MAX_PASSWORD))
    if password.lower() in common_passwords() or (name and password.lower() == name.lower()):
        raise AccountError(i18n.pair("account.password_common"))


def check_name(name: Any) -> str:
    """``name`` if it is a valid user name, else raise :class:`AccountError`."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise AccountError(i18n.pair("account.bad_name", name=repr(str(name)[:70])))
    return name


def check_role(role: Any) -> str:
    """``role`` if it is one of the roles, else raise :class:`AccountError`."""
    if role not in RANK:
        raise AccountError(i18n.pair("account.bad_role", role=repr(role), roles=", ".join(ROLES)))
    return role


class AccountStore:
    """Accounts and tokens in one JSON file (``path``), or in memory only when ``path`` is None.

    Changes another process makes (``axline users ...``) are picked up by :meth:`refresh`. On the
    asyncio loop it looks at the file at most once per ``refresh_s`` seconds and, when it changed,
    reads it in a worker thread (requests meanwhile see the previous accounts); elsewhere it checks
    on every call."""

    def __init__(self, path: str | os.PathLike | None, policy: LockPolicy | None = None,
                 refresh_s: float = 1.0) -> None:
        self.path = Path(path) if path is not None else None
        self.refresh_s = refresh_s
        self._checked = float("-inf")
        self._reloading = False
        self.reload_errors = 0
        self.last_reload_error: str | None = None
        self.policy = policy or LockPolicy()
        self.policy.check()
        self._lock = threading.RLock()
        self._accounts: dict[str, Account] = {}
        self._tokens: dict[str, ApiToken] = {}
        self._stamp: tuple[int, int] | None = None
        self._dummy_hash = HASHER.hash(secrets.token_hex(16))
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                os.chmod(self.path.parent, 0o700)
            self._reload(force=True)

    # -- file --------------------------------------------------------------------------------------
    def _file_stamp(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)  # type: ignore[arg-type]
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def _reload(self, force: bool = False) -> None:
        if self.path is None:
            return
        stamp = self._file_stamp()
        if not force and stamp == self._stamp:
            return
        with self._lock:
            if stamp is None:
                self._accounts, self._tokens = {}, {}
            else:
                data = json.loads(self.path.read_text(encoding="utf-8"))
                self._accounts = {a["name"]: Account(**a) for a in data.get("accounts", [])}
                self._tokens = {t["id"]: ApiToken(**t) for t in data.get("tokens", [])}
            self._stamp = stamp

    def refresh(self) -> None:
        """Pick up changes another process made (the file is read only when it changed)."""
        if self.path is None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # a worker thread or the command line: blocking is fine here
            self._reload()
            return
        now = time.monotonic()
        if self._reloading or now - self._checked < self.refresh_s:
            return
        self._checked = now
        if self._file_stamp() == self._stamp:  # one stat, at most once per refresh_s
            return
        self._reloading = True
        threading.Thread(target=self._reload_in_worker, name="accounts-reload", daemon=True).start()

    def _reload_in_worker(self) -> None:
        try:
            self._reload()
        except Exception as e:  # keep the accounts we have; count and show it
            self.reload_errors += 1
            self.last_reload_error = f"{type(e).__name__}: {e}"[:300]
            log.exception("could not read the accounts file %s", self.path)
        finally:
            self._reloading = False

    @contextlib.contextmanager
    def _change(self):
        with self._lock:
            if self.path is None:
                yield
                return
            lock_path = self.path.with_suffix(".lock")
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._reload(force=True)
                yield
                tmp = self.path.with_name(self.path.name + f".{os.getpid()}.tmp")
                data = {"version": 1, "accounts": [asdict(a) for a in self._accounts.values()],
                        "tokens": [asdict(t) for t in self._tokens.values()]}
                wfd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(wfd, "w", encoding="utf-8") as f:
                    json.dump(data, f, ensure_ascii=False, indent=1)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
                self._stamp = self._file_stamp()
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    # -- reading -----------------------------------------------------------------------------------
    def get(self, name: str) -> Account | None:
        """The account called ``name``, or ``None``."""
        self.refresh()
        return self._accounts.get(name)

    def accounts(self) -> list[Account]:
        """Every account, sorted by name."""
        self.refresh()
        return sorted(self._accounts.values(), key=lambda a: a.name)

    def has_people(self) -> bool:
        """Whether any person account exists (service accounts do not count)."""
        self.refresh()
        return any(a.kind == "person" for a in self._accounts.values())

    def has_admin(self) -> bool:
        """Whether an enabled person account has the admin role."""
        self.refresh()
        return any(a.role == "admin" and not a.disabled and a.kind == "person" for a in self._accounts.values())

    def _must(self, name: str) -> Account:
        acc = self._accounts.get(name)
        if acc is None:
            raise AccountError(i18n.pair("account.no_user", name=repr(name)))
        return acc

    # -- changes -----------------------------------------------------------------------------------
    def add(self, name: str, role: str, password: str | None = None, kind: str = "person") -> Account:
        """Create an account; a person's ``password`` must pass :func:`check_password`."""
        check_name(name)
        check_role(role)
        if kind not in ("person", "service"):
            raise AccountError(i18n.pair("account.bad_kind"))
        if kind == "person":
            check_password(password, name)
            hashed = HASHER.hash(password)  # type: ignore[arg-type]
        else:
            hashed = None
        with self._change():
            if name in self._accounts:
                raise AccountError(i18n.pair("account.exists", name=repr(name)))
            acc = Account(name=name, role=role, kind=kind, hash=hashed)
            self._accounts[name] = acc
        return acc

    def set_role(self, name: str, role: str) -> tuple[str, str]:
        """Give ``name`` a new role (never removing the last admin); returns (old, new)."""
        check_role(role)
        with self._change():
            acc = self._must(name)
            old = acc.role
            if old == "admin" and role != "admin":
                self._keep_an_admin(name)
            acc.role, acc.generation, acc.changed = role, acc.generation + 1, time.time()
            for t in self._tokens.values():  # a token never outranks its account
                if t.account == name and RANK[t.role] > RANK[role]:
                    t.role = role
        return old, role

    def set_disabled(self, name: str, disabled: bool) -> None:
        """Disable or enable ``name``; their sessions end (never disables the last admin)."""
        with self._change():
            acc = self._must(name)
            if disabled and acc.role == "admin":
                self._keep_an_admin(name)
            acc.disabled, acc.generation, acc.changed = disabled, acc.generation + 1, time.time()

    def reset_password(self, name: str, password: str) -> None:
        """Set a new password for the person ``name``; their sessions end."""
        check_password(password, name)
        hashed = HASHER.hash(password)
        with self._change():
            acc = self._must(name)
            if acc.kind != "person":
                raise AccountError(i18n.pair("account.service_password", name=name))
            acc.hash, acc.generation, acc.changed = hashed, acc.generation + 1, time.time()
            acc.failures, acc.locked_until = [], 0.0

    def unlock(self, name: str) -> bool:
        """Clear the failed logins of ``name``; whether it was locked or had failures."""
        with self._change():
            acc = self._must(name)
            was = acc.locked_until > time.time() or bool(acc.failures)
            acc.failures, acc.locked_until = [], 0.0
        return was

    def remove(self, name: str) -> None:
        """Delete the account ``name`` and its API tokens (never the last admin)."""
        with self._change():
            acc = self._must(name)
            if acc.role == "admin":
                self._keep_an_admin(name)
            del self._accounts[name]
            for tid in [t.id for t in self._tokens.values() if t.account == name]:
                del self._tokens[tid]

    def _keep_an_admin(self, name: str) -> None:
        others = [a for a in self._accounts.values()
                  if a.name != name and a.role == "admin" and not a.disabled and a.kind == "person"]
        if not others:
            raise AccountError(i18n.pair("account.last_admin"))

    # -- login -------------------------------------------------------------------------------------
    def authenticate(self, name: str, password: str, now: float | None = None) -> AuthResult:
        """Check a password (slow by design: run it off the event loop). Counts failures and locks."""
        now = time.time() if now is None else now
        pol = self.policy
        self.refresh()
        acc = self._accounts.get(name) if isinstance(name, str) else None
        if acc is None or acc.kind != "person" or acc.hash is None:
            _verify(self._dummy_hash, password)  # same time as a real check: names do not leak
            return AuthResult(False, "bad" if acc is None else "service")
        if acc.locked_until > now:
            return AuthResult(False, "locked", retry_after=int(acc.locked_until - now) + 1)
        good = _verify(acc.hash, password)
        if good and acc.disabled:
            return AuthResult(False, "disabled")
        with self._change():
            acc = self._must(name)
            if good:
                acc.failures = []
                if HASHER.check_needs_rehash(acc.hash):  # type: ignore[arg-type]
                    acc.hash = HASHER.hash(password)
                return AuthResult(True, "ok", User(acc.name, acc.role), acc.generation)
            acc.failures = [t for t in acc.failures if now - t < pol.window_s] + [now]
            if len(acc.failures) >= pol.max_failures:  # the next attempt, right or wrong, finds it locked
                acc.locked_until = now + pol.lockout_s
                acc.failures = []
        return AuthResult(False, "bad")

    def session_user(self, name: str, generation: int) -> User | None:
        """The user behind a session, if the account still exists unchanged and enabled."""
        acc = self.get(name)
        if acc is None or acc.disabled or acc.generation != generation:
            return None
        return User(acc.name, acc.role)

    # -- API tokens --------------------------------------------------------------------------------
    def token_add(self, account: str, role: str | None = None, days: float = 90.0,
                  creator: str = "") -> tuple[str, ApiToken]:
        """A new token for the service account ``account`` (created with ``role`` if missing), made by
        ``creator``. Returns the token text, shown once, and its record (which keeps only a hash).
        Person accounts never get tokens: a token for one would let its maker act under that person's name."""
        if not 0 < days <= 3660:
            raise AccountError(i18n.pair("account.token_days"))
        check_name(account)
        with self._change():
            acc = self._accounts.get(account)
            if acc is None:
                if role is None:
                    raise AccountError(i18n.pair("account.no_account", name=repr(account)))
                acc = Account(name=account, role=check_role(role), kind="service")
                self._accounts[account] = acc
            elif acc.kind != "service":
                raise AccountError(i18n.pair("account.token_person", name=repr(account)))
            role = check_role(role or acc.role)
            if RANK[role] > RANK[acc.role]:
                raise AccountError(i18n.pair("account.token_outranks", name=account, role=acc.role))
            tid = secrets.token_hex(6)
            secret = secrets.token_urlsafe(32)
            now = time.time()
            tok = ApiToken(id=tid, account=account, role=role, hash=_sha(secret), created=now,
                           expires=now + days * 86400, creator=creator)
            self._tokens[tid] = tok
        return f"{TOKEN_PREFIX}{tid}.{secret}", tok

    def token_revoke(self, tid: str) -> ApiToken:
        """Revoke the API token ``tid``; returns its record."""
        with self._change():
            tok = self._tokens.get(tid)
            if tok is None:
                raise AccountError(i18n.pair("account.no_token", id=repr(tid)))
            tok.revoked = True
        return tok

    def tokens(self) -> list[ApiToken]:
        """Every API token, oldest first."""
        self.refresh()
        return sorted(self._tokens.values(), key=lambda t: t.created)

    def token_user(self, text: str, now: float | None = None) -> User | None:
        """The user an ``Authorization: Bearer`` token stands for, or None (unknown, revoked, expired)."""
        now = time.time() if now is None else now
        if not isinstance(text, str) or not text.startswith(TOKEN_PREFIX) or len(text) > 200:
            return None
        tid, _, secret = text[len(TOKEN_PREFIX):].partition(".")
        self.refresh()
        tok = self._tokens.get(tid)
        if tok is None or tok.revoked or tok.expires <= now:
            return None
        if not hmac.compare_digest(tok.hash, _sha(secret)):
            return None
        acc = self._accounts.get(tok.account)
        if acc is None or acc.disabled:
            return None
        role = tok.role if RANK[tok.role] <= RANK[acc.role] else acc.role
        return User(acc.name, role)


def _sha(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _verify(hashed: str, password: Any) -> bool:
    if not isinstance(password, str):
        return False
    try:
        return HASHER.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
