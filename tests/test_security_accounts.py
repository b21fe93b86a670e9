"""Accounts and tokens: password rules, argon2id, lockout, role changes, tokens, the shared file."""

from __future__ import annotations

import json
import time

import pytest

from axline.app.accounts import AccountError, AccountStore, LockPolicy, check_password, common_passwords

PW = "quiet-lathe-harbour-42"


def test_password_rules():
    assert len(common_passwords()) > 19_000
    for bad, needle in (("short1", "too short"), ("password123", "common"), ("qwertyuiop", "common"),
                        ("x" * 129, "too long"), (None, "must be text")):
        with pytest.raises(AccountError, match=needle):
            check_password(bad)
    with pytest.raises(AccountError, match="common"):
        check_password("kim-the-op", name="KIM-THE-OP")
    # no composition rules: a long lower-case phrase is fine, and so is Korean
    check_password("lathe harbour quiet")
    check_password("선반작업자비밀문구")


def test_hash_is_argon2id_and_never_the_password(tmp_path):
    store = AccountStore(tmp_path / "accounts.json")
    store.add("kim", "operator", PW)
    text = (tmp_path / "accounts.json").read_text()
    assert PW not in text
    assert json.loads(text)["accounts"][0]["hash"].startswith("$argon2id$")
    assert (tmp_path / "accounts.json").stat().st_mode & 0o777 == 0o600
    assert store.authenticate("kim", PW).ok
    assert not store.authenticate("kim", PW + "x").ok
    assert store.authenticate("nobody", PW).reason == "bad"


def test_lockout_after_five_failures_and_admin_unlock(tmp_path):
    store = AccountStore(tmp_path / "a.json", LockPolicy(max_failures=5, window_s=300, lockout_s=300))
    store.add("kim", "operator", PW)
    t0 = time.time()
    reasons = [store.authenticate("kim", f"wrong-{i}-password", now=t0 + i).reason for i in range(6)]
    assert reasons == ["bad", "bad", "bad", "bad", "bad", "locked"]  # five tries, the sixth is locked out
    # the right password does not open a locked account
    res = store.authenticate("kim", PW, now=t0 + 10)
    assert res.reason == "locked" and 0 < res.retry_after <= 300
    # the lock ends by itself ...
    assert store.authenticate("kim", PW, now=t0 + 4 + 301).ok
    # ... or when an admin unlocks it
    for i in range(5):
        store.authenticate("kim", "wrong-wrong", now=t0 + 400 + i)
    assert store.authenticate("kim", PW, now=t0 + 410).reason == "locked"
    store.unlock("kim")
    assert store.authenticate("kim", PW, now=t0 + 411).ok
    # failures outside the window do not add up
    for i in range(10):
        assert store.authenticate("kim", "wrong-wrong", now=t0 + 1000 + i * 100).reason == "bad"


def test_changes_bump_the_generation_and_keep_an_admin(tmp_path):
    store = AccountStore(tmp_path / "a.json")
    store.add("root", "admin", PW)
    store.add("kim", "viewer", PW)
    g = store.get("kim").generation
    assert store.session_user("kim", g).role == "viewer"
    store.set_role("kim", "engineer")
    assert store.session_user("kim", g) is None  # the old session dies
    g = store.get("kim").generation
    store.set_disabled("kim", True)
    assert store.session_user("kim", g) is None
    assert store.authenticate("kim", PW).reason == "disabled"
    with pytest.raises(AccountError, match="last enabled admin"):
        store.set_role("root", "viewer")
    with pytest.raises(AccountError, match="last enabled admin"):
        store.remove("root")
    with pytest.raises(AccountError, match="exists"):
        store.add("kim", "viewer", PW)
    with pytest.raises(AccountError, match="not valid"):
        store.add("kim;rm", "viewer", PW)
    with pytest.raises(AccountError, match="unknown role"):
        store.add("lee", "superuser", PW)


def test_two_processes_share_the_file(tmp_path):
    server = AccountStore(tmp_path / "a.json")
    cli = AccountStore(tmp_path / "a.json")
    cli.add("kim", "engineer", PW)
    assert server.get("kim").role == "engineer"  # seen without a restart
    g = server.get("kim").generation
    cli.set_role("kim", "viewer")
    assert server.session_user("kim", g) is None


def test_tokens_are_hashed_scoped_expiring_and_revocable(tmp_path):
    store = AccountStore(tmp_path / "a.json")
    text, tok = store.token_add("historian-export", "viewer", days=1)
    assert text.startswith("axl_") and text.split(".", 1)[1] not in (tmp_path / "a.json").read_text()
    user = store.token_user(text)
    assert (user.name, user.role) == ("historian-export", "viewer")
    assert store.token_user(text[:-1] + ("A" if text[-1] != "A" else "B")) is None
    assert store.token_user("axl_nothing.here") is None
    assert store.token_user(text, now=time.time() + 2 * 86400) is None  # expired
    with pytest.raises(AccountError, match="outrank"):
        store.token_add("historian-export", "engineer")
    # a service account cannot log in with a password
    assert store.authenticate("historian-export", "").reason == "service"
    store.token_revoke(tok.id)
    assert store.token_user(text) is None
    # lowering the account's role lowers its tokens
    text2, _ = store.token_add("line-scripts", "engineer")
    store.set_role("line-scripts", "viewer")
    assert store.token_user(text2).role == "viewer"


def test_no_token_for_a_person_account(tmp_path):
    store = AccountStore(tmp_path / "a.json")
    store.add("kim", "engineer", "correct horse battery 7")
    with pytest.raises(AccountError, match="service"):
        store.token_add("kim", "engineer", creator="root")
    assert store.tokens() == []
    _, tok = store.token_add("mes", "viewer", creator="root")
    assert tok.creator == "root" and AccountStore(tmp_path / "a.json").tokens()[0].creator == "root"


def test_first_admin_from_the_environment(tmp_path, monkeypatch, capsys):
    import argparse

    from axline.app.cli_security import account_store, ensure_first_admin

    args = argparse.Namespace(first_admin=None, password_file=None)
    ensure_first_admin(args, tmp_path, "127.0.0.1")  # loopback, nobody named: read-only, and it says so
    assert "read-only" in capsys.readouterr().err and not account_store(tmp_path).has_people()
    monkeypatch.setenv("AXLINE_PASSWORD", PW)
    args.first_admin = "plant-admin"
    ensure_first_admin(args, tmp_path, "0.0.0.0")
    store = account_store(tmp_path)
    assert store.get("plant-admin").role == "admin" and store.authenticate("plant-admin", PW).ok
    audit = (tmp_path / "data" / "audit" / "audit.jsonl").read_text()
    assert '"action":"user.add"' in audit and PW not in audit
    args.first_admin = "second"
    ensure_first_admin(args, tmp_path, "0.0.0.0")  # only ever the first
    assert store.get("second") is None
