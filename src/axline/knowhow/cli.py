"""`axline knowhow ...`: import old work orders, search, export or delete one author's data, adapt the
name masker to the plant's labelled text."""

from __future__ import annotations

import argparse
import getpass
import json
import sys

from axline import i18n


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the actions of ``axline knowhow`` (import, search, export, delete, gaps, learn-masker) to ``p``."""
    sub = p.add_subparsers(dest="knowhow_cmd", metavar="ACTION")

    def common(s: argparse.ArgumentParser) -> None:
        s.add_argument("--store", default=None, help="case base folder (or postgresql:// URL)")
        s.add_argument("--config", "-c", default=None, help="plant file: the case base beside the plant's data")

    s = sub.add_parser("import", help="import cases: JSON lines, or a CSV/.xlsx list of old work orders")
    s.add_argument("file", help="FILE.jsonl ({id, title, symptom, cause, action, asset, language, author}) "
                                "or FILE.csv / FILE.xlsx with Korean or English column names")
    common(s)
    s = sub.add_parser("search", help="find cases for a symptom, in Korean or English")
    s.add_argument("text")
    s.add_argument("--asset", default="", help="prefer cases about this asset path")
    s.add_argument("--top", type=int, default=5, help="how many cases (1..50, default 5)")
    s.add_argument("--json", action="store_true", help='print {"results": [{"id", "score", "why"}, ...]}')
    s.add_argument("--approved-only", action="store_true", help="only approved cases")
    common(s)
    for name, what in (("export", "write all cases of one author (masked) as JSON"),
                       ("delete", "wipe one author's cases: text, photos, embeddings, index entries")):
        s = sub.add_parser(name, help=what)
        s.add_argument("--author", required=True, help="the author's pseudonym (W-...) or user name")
        if name == "export":
            s.add_argument("--out", default="-", help="file to write (default: standard output)")
        else:
            s.add_argument("--yes", action="store_true", help="do not ask for confirmation")
        common(s)
    s = sub.add_parser("gaps", help="searches that found no good case")
    common(s)
    s = sub.add_parser("learn-masker", help="adapt the name masker to the plant's labelled text (kept in the case store)")
    s.add_argument("file", nargs="?", default=None,
                   help="labelled text: token<TAB>label lines (<sensitive> marks a name; a blank line between "
                        'texts), or FILE.jsonl with {"tokens": [...], "sensitive": [true/false, ...]} per line')
    s.add_argument("--folds", type=int, default=5, help="cross-validation folds for choosing the options (default 5)")
    s.add_argument("--forget", action="store_true", help="remove the plant's masker: mask with the generic one again")
    common(s)


def _open(args):
    from axline.knowhow.base import KnowHow

    if args.store:
        return KnowHow(args.store)
    if args.config:
        from axline.plant import load_plant

        return KnowHow.for_plant(load_plant(args.config))
    raise ValueError("give --store DIR or --config plant.yaml (the case base beside the plant's data)")


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except Exception:  # noqa: BLE001 - no login name in this environment (a container)
        return "cli"


def run(args) -> int:
    """``axline knowhow ACTION``: run one action on the case base."""
    from axline.knowhow.base import read_jsonl, read_labelled, read_table

    cmd = getattr(args, "knowhow_cmd", None)
    if cmd is None:
        print(i18n.say("knowhow.cli.no_action"), file=sys.stderr)
        return 2
    if cmd == "learn-masker" and not args.forget and not args.file:
        print(i18n.say("knowhow.cli.masker_no_file"), file=sys.stderr)
        return 2
    kh = _open(args)
    try:
        if cmd == "import":
            jsonl = args.file.lower().endswith((".jsonl", ".json"))
            rows = read_jsonl(args.file) if jsonl else read_table(args.file)
            out = kh.import_rows(rows, _actor(), require_id=jsonl)  # work-order sheets may lack ids
            for e in out["errors"]:
                print(i18n.say("knowhow.cli.skipped", row=e), file=sys.stderr)
            print(i18n.say("knowhow.cli.imported", n=out["imported"], store=kh.store.location, skipped=out["error_count"]))
            return 0 if out["error_count"] == 0 else 1
        if cmd == "search":
            states = ("approved",) if args.approved_only else None
            res = kh.search(args.text, asset=args.asset, top=args.top, states=states)
            if args.json:
                print(json.dumps({"results": res}, ensure_ascii=False))
            else:
                for r in res:
                    c = kh.store.get(r["id"])
                    print(f"{r['id']}  {r['confidence']:.2f}  {c['title'] or c['symptom'][:60]}  "
                          f"why: {json.dumps(r['why'], ensure_ascii=False)}")
            return 0
        if cmd == "export":
            out = kh.export_author(args.author, _actor())
            text = json.dumps(out, ensure_ascii=False, indent=1)
            if args.out == "-":
                print(text)
            else:
                with open(args.out, "w", encoding="utf-8") as f:
                    f.write(text)
                print(i18n.say("knowhow.cli.exported", n=len(out["cases"]), author=out["author"], file=args.out))
            return 0
        if cmd == "delete":
            if not args.yes:
                answer = input(i18n.say("knowhow.cli.confirm_delete", author=args.author))
                if answer.strip().lower() != "yes":
                    print(i18n.say("knowhow.cli.nothing_deleted"))
                    return 1
            out = kh.delete_author(args.author, _actor())
            print(i18n.say("knowhow.cli.deleted", n=out["deleted_cases"], author=out["author"]))
            return 0
        if cmd == "learn-masker":
            where = kh.store.location
            if args.forget:
                print(i18n.say("knowhow.cli.masker_forgotten" if kh.forget_masker(_actor()) else "knowhow.cli.masker_none",
                               store=where))
                return 0
            rep = kh.learn_masker(read_labelled(args.file), _actor(), folds=max(2, args.folds), source=args.file)
            cv = rep["chosen"]["cross_validation"]
            print(i18n.say("knowhow.cli.masker_learnt", texts=rep["texts"], tokens=rep["sensitive_tokens"], store=where,
                           options=json.dumps(rep["chosen"]["options"]), recall=cv["recall"], precision=cv["precision"]))
            if not rep["precision_reached"]:
                print(i18n.say("knowhow.cli.masker_low_precision", min=rep["min_precision"]), file=sys.stderr)
            return 0
        if cmd == "gaps":
            for g in kh.store.gaps():
                print(f"{g['best']:.2f}  {g['reason']:<14} {g['asset'] or '-':<30} {g['query']}")
            return 0
    finally:
        kh.close()
    return 2
