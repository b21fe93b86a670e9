"""`axline historian verify DIR`: check every record of an embedded historian, read-only.

Reads the files directly (no lock is taken, nothing is written, a running service is not
disturbed): each segment's records are walked, each header and payload CRC checked, each tag id
checked against ``tags.txt``. Damage is reported by file and offset; after damage the walk resumes
at the next valid record, so one bad byte never hides the rest. Exit status 0: no damage; 1: damage.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import re
import sys
import zlib

import numpy as np

from axline import i18n
from axline.historian.record import HEADER_SIZE, next_valid, parse_header

_SEG_RE = re.compile(r"^seg-(\d{6,})\.dat$")


def verify_dir(path: str) -> dict:
    """Walk every segment; return {"records", "readings", "bytes", "problems": [{file, offset, problem}]}."""
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path} is not a historian directory")
    problems: list[dict] = []
    ntags_known = 0
    tags_path = os.path.join(path, "tags.txt")
    if os.path.exists(tags_path):
        raw = open(tags_path, "rb").read()
        lines = raw.split(b"\n")
        if raw and not raw.endswith(b"\n"):
            problems.append({"file": "tags.txt", "offset": raw.rfind(b"\n") + 1,
                             "problem": "the last line is torn (no newline); cut on next open"})
            lines = lines[:-1]
        else:
            lines = lines[:-1]
        seen: set[bytes] = set()
        off = 0
        for ln in lines:
            if not ln or ln in seen or b"\0" in ln:
                problems.append({"file": "tags.txt", "offset": off, "problem": "empty, duplicate or NUL line"})
            seen.add(ln)
            off += len(ln) + 1
        ntags_known = len(lines)
    records = readings = total = 0
    segs = sorted(int(m.group(1)) for n in os.listdir(path) if (m := _SEG_RE.match(n)))
    for seg in segs:
        name = f"seg-{seg:06d}.dat"
        fp = os.path.join(path, name)
        size = os.path.getsize(fp)
        total += size
        if size == 0:
            continue
        with open(fp, "rb") as f:
            mm = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_READ)
        try:
            off = 0
            while off < size:
                h = parse_header(mm, off)
                if h is None or off + HEADER_SIZE + h[4] > size:
                    nxt = next_valid(mm, off)
                    stop = nxt if nxt >= 0 else size
                    what = "header damaged or record cut short" if h is None else "record runs past the end"
                    problems.append({"file": name, "offset": off, "length": stop - off, "problem": what})
                    if nxt < 0:
                        break
                    off = nxt
                    continue
                count, ntags, _tmin, _tmax, plen, pcrc = h
                end = off + HEADER_SIZE + plen
                if zlib.crc32(mm[off + HEADER_SIZE : end]) != pcrc:
                    problems.append({"file": name, "offset": off, "length": end - off,
                                     "problem": "payload fails its CRC check"})
                else:
                    ids = np.frombuffer(mm, np.uint32, ntags, off + HEADER_SIZE)
                    cnts = np.frombuffer(mm, np.uint32, ntags, off + HEADER_SIZE + 4 * ntags)
                    if int(cnts.sum()) != count or (ntags_known and int(ids.max()) >= ntags_known):
                        problems.append({"file": name, "offset": off, "length": end - off,
                                         "problem": f"tag directory does not match tags.txt ({ntags_known} tags)"})
                    else:
                        records += 1
                        readings += count
                    del ids, cnts
                off = end
        finally:
            mm.close()
    quarantined = []
    dj = os.path.join(path, "damaged.json")
    if os.path.exists(dj):
        try:
            quarantined = json.load(open(dj, encoding="utf-8"))
        except ValueError as e:
            problems.append({"file": "damaged.json", "offset": 0, "problem": f"not valid JSON ({e})"})
    return {"path": path, "segments": len(segs), "records": records, "readings": readings, "bytes": total,
            "problems": problems, "quarantined_before": quarantined}


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Add the options of ``axline historian verify`` to ``p``."""
    p.add_argument("dir", help="the embedded historian directory (e.g. data/historian)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    """``axline historian verify DIR``: check every segment and index file; exit 1 on damage."""
    try:
        rep = verify_dir(args.dir)
    except (FileNotFoundError, NotADirectoryError) as e:
        print(f"axline historian verify: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(rep, indent=1))
    else:
        print(i18n.say("cli.verify_summary", path=rep["path"], segments=rep["segments"], records=rep["records"],
                       readings=rep["readings"], mib=f"{rep['bytes'] / 2**20:.1f}"))
        for p in rep["problems"]:
            print(i18n.say("cli.verify_damaged", file=p["file"], offset=p["offset"], problem=p["problem"]))
        if rep["quarantined_before"]:
            print(i18n.say("cli.verify_quarantined", n=len(rep["quarantined_before"])))
        print(i18n.say("cli.verify_clean") if not rep["problems"] else
              i18n.say("cli.verify_problems", n=len(rep["problems"])))
    return 1 if rep["problems"] else 0
