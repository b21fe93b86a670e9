"""``axline users``, ``axline tokens``, ``axline audit``, ``axline security-report`` and the web
options of ``axline serve`` (TLS, allowed host names, the first admin).

Passwords never come from the command line (``ps`` shows it to everyone): they come from the
``AXLINE_PASSWORD`` environment variable, a file (``--password-file``), or a prompt.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import time
from pathlib import Path

from axline import i18n
from axline.app.accounts import AccountError, AccountStore, LockPolicy
from axline.app.audit import AuditLog
from axline.app.roles import ROLES


def _base_dir(args) -> Path:
    if getattr(args, "data_dir", None):
        return Path(args.data_dir)
    cfg = Path(getattr(args, "config", None) or "plant.yaml")
    if not cfg.exists():
        raise FileNotFoundError(i18n.pair("cli.no_plant_file", file=cfg))
    return cfg.resolve().parent


def _account_tools(args) -> tuple[AccountStore, AuditLog, str]:
    """The account store and the audit trail of the plant ``args`` name, and who is calling."""
    base = _base_dir(args)
    return account_store(base), audit_log(base), _who()


def account_store(base: Path) -> AccountStore:
    """The account store of the plant in ``base`` (``data/security/accounts.json``)."""
    return AccountStore(base / "data" / "security" / "accounts.json", LockPolicy())


def audit_log(base: Path) -> AuditLog:
    """The audit trail of the plant in ``base`` (``data/audit/audit.jsonl``)."""
    return AuditLog(base / "data" / "audit" / "audit.jsonl")


def read_password(args, prompt: str = "password", confirm: bool = True) -> str:
    """From AXLINE_PASSWORD, --password-file or an interactive prompt; never from argv."""
    env = os.environ.get("AXLINE_PASSWORD")
    if env:
        return env
    pf = getattr(args, "password_file", None)
    if pf:
        text = Path(pf).read_text(encoding="utf-8").rstrip("\r\n")
        if not text:
            raise ValueError(i18n.pair("cli.password_file_empty", file=pf))
        return text
    if not sys.stdin.isatty():
        raise ValueError(i18n.pair("cli.no_password"))
    pw = getpass.getpass(f"{prompt}: ")
    if confirm and getpass.getpass(f"{prompt} (again): ") != pw:
        raise ValueError(i18n.pair("cli.passwords_differ"))
    return pw


def _who() -> str:
    try:
        return f"cli:{os.getlogin()}"
    except OSError:
        import pwd

        return f"cli:{pwd.getpwuid(os.getuid()).pw_name}"


def _common(s: argparse.ArgumentParser) -> None:
    s.add_argument("--config", "-c", default=None, help="plant file (default plant.yaml); data lives beside it")
    s.add_argument("--data-dir", default=None, help="the folder that holds data/ (instead of --config)")


def add_parsers(sub) -> None:
    """Add the ``users``, ``tokens``, ``audit``, ``certs`` and ``security`` commands to ``sub``."""
    s = sub.add_parser("users", help="people's accounts: add, list, role, disable, enable, reset, remove, unlock")
    _common(s)
    us = s.add_subparsers(dest="users_cmd", metavar="ACTION")
    a = us.add_parser("add", help="add a person (password from AXLINE_PASSWORD, --password-file or a prompt)")
    a.add_argument("name")
    a.add_argument("--role", required=True, choices=ROLES)
    a.add_argument("--password-file", default=None)
    us.add_parser("list", help="list accounts")
    a = us.add_parser("role", help="change a user's role (ends their sessions)")
    a.add_argument("name")
    a.add_argument("role", choices=ROLES)
    for name, help_ in (("disable", "disable an account (ends its sessions)"), ("enable", "enable an account"),
                        ("remove", "remove an account and its tokens"), ("unlock", "lift a lockout")):
        a = us.add_parser(name, help=help_)
        a.add_argument("name")
    a = us.add_parser("reset", help="set a new password (ends the user's sessions)")
    a.add_argument("name")
    a.add_argument("--password-file", default=None)
    s.set_defaults(func_run=run_users)

    s = sub.add_parser("tokens", help="API tokens for machines and scripts: add, list, revoke")
    _common(s)
    ts = s.add_subparsers(dest="tokens_cmd", metavar="ACTION")
    a = ts.add_parser("add", help="make a token for a service account (printed once)")
    a.add_argument("account")
    a.add_argument("--role", default=None, choices=ROLES, help="the token's role (creates the service account)")
    a.add_argument("--days", type=float, default=90.0, help="valid for this many days (default 90)")
    ts.add_parser("list", help="list tokens (never their secrets)")
    a = ts.add_parser("revoke", help="revoke a token by id")
    a.add_argument("id")
    s.set_defaults(func_run=run_tokens)

    s = sub.add_parser("audit", help="the audit trail: verify, export, tail")
    _common(s)
    aus = s.add_subparsers(dest="audit_cmd", metavar="ACTION")
    aus.add_parser("verify", help="check the hash chain; exit 1 when an entry was edited or removed")
    a = aus.add_parser("export", help="write the trail as JSON lines or RFC 5424 syslog lines")
    a.add_argument("--format", choices=("jsonl", "syslog"), default="jsonl")
    a.add_argument("--out", default="-", help="file to write (default: standard output)")
    a = aus.add_parser("tail", help="print the newest entries")
    a.add_argument("-n", type=int, default=20)
    s.set_defaults(func_run=run_audit)

    s = sub.add_parser("security-report", help="the security settings of a plant's dashboard (machine readable)")
    _common(s)
    s.add_argument("--json", action="store_true", help="JSON (the default is JSON too; kept for scripts)")
    s.add_argument("--host", default="127.0.0.1", help="the address the dashboard is served on")
    web_args(s, serve=False)
    s.set_defaults(func_run=run_report)


def web_args(s: argparse.ArgumentParser, serve: bool = True) -> None:
    """The dashboard's network and security options (serve, edge, demo, security-report)."""
    if serve:
        s.add_argument("--host", default="127.0.0.1", help="address to serve the dashboard on (default 127.0.0.1)")
        s.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    s.add_argument("--tls", action="store_true", help="serve HTTPS (with --cert/--key, or data/tls from "
                                                       "`axline certs web`)")
    s.add_argument("--cert", default=None, help="TLS certificate chain (PEM)")
    s.add_argument("--key", default=None, help="TLS private key (PEM)")
    s.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                   help="a host name the dashboard is reached by (repeatable; DNS rebinding protection)")
    s.add_argument("--insecure-http", action="store_true",
                   help="allow plain HTTP on a non-loopback address (passwords cross the network in clear)")
    if serve:
        s.add_argument("--first-admin", default=os.environ.get("AXLINE_ADMIN_USER"), metavar="NAME",
                       help="create this admin if there are no accounts yet (password from AXLINE_PASSWORD, "
                            "--first-admin-password-file or a prompt; env AXLINE_ADMIN_USER)")
        s.add_argument("--first-admin-password-file", default=None, dest="password_file")


def settings_from_args(args, demo: bool = False):
    """Security settings from the ``serve`` / ``demo`` options."""
    from axline.app.security import SecuritySettings

    return SecuritySettings(bind_host=getattr(args, "host", "127.0.0.1"), hosts=list(args.allow_host or []),
                            tls=bool(args.tls), insecure_http=bool(args.insecure_http), demo=demo)


def ssl_context_from_args(args, base: Path):
    """An SSL context for --tls: --cert/--key, else the files `axline certs web` wrote into data/tls."""
    if not args.tls:
        if args.cert or args.key:
            raise ValueError(i18n.pair("serve.cert_needs_tls"))
        return None
    from axline.app.tls import server_context

    cert = args.cert or str(base / "data" / "tls" / "server.pem")
    key = args.key or str(base / "data" / "tls" / "server.key")
    if not (os.path.exists(cert) and os.path.exists(key)):
        raise FileNotFoundError(i18n.pair("serve.no_certificate", cert=cert, key=key, folder=base / "data" / "tls"))
    return server_context(cert, key)


def ensure_first_admin(args, base: Path, host: str) -> None:
    """The first start of a non-demo plant: make the first admin from --first-admin / env / prompt."""
    from axline.app.security import is_loopback

    store = account_store(base)
    if store.has_people():
        return
    name = getattr(args, "first_admin", None)
    if not name and sys.stdin.isatty() and not is_loopback(host):
        name = input(i18n.pair("cli.first_admin_prompt") + ": ").strip()
    if not name:
        if is_loopback(host):
            print(i18n.pair("cli.read_only"), file=sys.stderr)
        return
    password = read_password(args, f"password for {name}")
    store.add(name, "admin", password)
    audit_log(base).record(_who(), "user.add", name, new="admin", detail="first admin")
    print(i18n.pair("cli.first_admin_made", name=repr(name)))


def run_users(args) -> int:
    """``axline users ACTION``: add, list, change and remove accounts (audited)."""
    store, log, who = _account_tools(args)
    cmd = args.users_cmd
    try:
        if cmd == "add":
            pw = read_password(args, f"password for {args.name}")
            store.add(args.name, args.role, pw)
            log.record(who, "user.add", args.name, new=args.role)
            print(i18n.say("cli.user_added", name=args.name, role=args.role))
        elif cmd == "list" or cmd is None:
            now = time.time()
            for a in store.accounts():
                state = "disabled" if a.disabled else ("locked" if a.locked_until > now else "active")
                print(f"{a.name:24} {a.role:9} {a.kind:8} {state}")
            if not store.accounts():
                print(i18n.say("cli.no_accounts"))
        elif cmd == "role":
            old, new = store.set_role(args.name, args.role)
            log.record(who, "user.role", args.name, old=old, new=new)
            print(i18n.say("cli.role_changed", name=args.name, old=old, new=new))
        elif cmd in ("disable", "enable"):
            store.set_disabled(args.name, cmd == "disable")
            log.record(who, f"user.{cmd}", args.name)
            print(i18n.say(f"cli.user_{cmd}d", name=args.name))
        elif cmd == "reset":
            store.reset_password(args.name, read_password(args, f"new password for {args.name}"))
            log.record(who, "user.reset", args.name)
            print(i18n.say("cli.password_reset", name=args.name))
        elif cmd == "remove":
            acc = store.get(args.name)
            store.remove(args.name)
            log.record(who, "user.remove", args.name, old=acc.role if acc else None)
            print(i18n.say("cli.user_removed", name=args.name))
        elif cmd == "unlock":
            store.unlock(args.name)
            log.record(who, "user.unlock", args.name)
            print(i18n.say("cli.user_unlocked", name=args.name))
    except AccountError as e:
        log.record(who, f"user.{cmd}", getattr(args, "name", ""), result=f"refused: {e}")
        print(f"axline: {e}", file=sys.stderr)
        return 2
    return 0


def run_tokens(args) -> int:
    """``axline tokens ACTION``: make, list and revoke API tokens (audited)."""
    store, log, who = _account_tools(args)
    try:
        if args.tokens_cmd == "add":
            text, tok = store.token_add(args.account, args.role, args.days, creator=who)
            log.record(who, "token.add", f"{tok.account}/{tok.id}", new=tok.role,
                       detail={"creator": who, "account": tok.account, "expires": tok.expires})
            print(text)
            print(i18n.say("cli.token_made", id=tok.id, account=tok.account, role=tok.role, days=f"{args.days:g}"),
                  file=sys.stderr)
        elif args.tokens_cmd == "revoke":
            tok = store.token_revoke(args.id)
            log.record(who, "token.revoke", f"{tok.account}/{tok.id}")
            print(i18n.say("cli.token_revoked", id=tok.id))
        else:
            now = time.time()
            for t in store.tokens():
                state = "revoked" if t.revoked else ("expired" if t.expires <= now else "active")
                print(f"{t.id}  {t.account:24} {t.role:9} {state:8} expires "
                      f"{time.strftime('%Y-%m-%d', time.gmtime(t.expires))}")
    except AccountError as e:
        target = getattr(args, "account", None) or getattr(args, "id", "")
        log.record(who, f"token.{args.tokens_cmd}", str(target), result=f"refused: {e}")
        print(f"axline: {e}", file=sys.stderr)
        return 2
    return 0


def run_audit(args) -> int:
    """``axline audit ACTION``: show, export or verify the audit trail."""
    base = _base_dir(args)
    log = audit_log(base)
    if args.audit_cmd == "export":
        if args.out == "-":
            n = log.export(sys.stdout, args.format)
        else:
            with open(args.out, "w", encoding="utf-8") as f:
                n = log.export(f, args.format)
        log.record(_who(), "audit.export", args.out, new=args.format, detail={"entries": n})
        print(i18n.say("cli.audit_exported", n=n), file=sys.stderr)
        return 0
    if args.audit_cmd == "tail":
        for e in reversed(log.tail(args.n)):
            print(json.dumps(e, ensure_ascii=False))
        return 0
    res = log.verify()
    if res.ok:
        print(i18n.pair("cli.audit_ok", entries=res.entries))
        return 0
    print(i18n.pair("cli.audit_broken", problems=len(res.problems), entries=res.entries), file=sys.stderr)
    for p in res.problems[:50]:
        print(f"  {p}", file=sys.stderr)
    return 1


def run_report(args) -> int:
    """``axline security report``: the security settings and checks as JSON."""
    from axline.app.security import Security

    base = _base_dir(args)
    settings = settings_from_args(args)
    settings.bind_host = getattr(args, "host", None) or "127.0.0.1"
    sec = Security.for_dir(base, settings)
    report = sec.report()
    report["data_dir"] = str(base)
    report["generated"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    try:
        sec.check_bind()
        report["would_start"] = True
    except ValueError as e:
        report["would_start"] = False
        report["refusal"] = str(e)
    verify = sec.audit.verify()
    report["audit"]["chain_ok"] = verify.ok
    report["audit"]["entries"] = verify.entries
    print(json.dumps(report, ensure_ascii=False, indent=2))
    return 0
