"""What polled Modbus values are: bits, float32 register pairs (scored on how smoothly they move)
or int16/uint16 registers, each drafted as a guess with its reason."""

from __future__ import annotations

import numpy as np

from axline.discover.signal import Signal


def _check_samples(addresses: list[int], samples: np.ndarray, times: np.ndarray) -> None:
    if samples.ndim != 2 or samples.shape != (len(times), len(addresses)):
        raise ValueError(
            f"samples must be polls x addresses = ({len(times)}, {len(addresses)}), got shape {samples.shape}"
        )


def _change_times(col: np.ndarray, times: np.ndarray) -> list[float]:
    """Poll times at which a column's value differs from the previous valid sample."""
    ok = ~np.isnan(col)
    v, t = col[ok], times[ok]
    if len(v) < 2:
        return []
    return t[1:][v[1:] != v[:-1]].tolist()


def _describe_changes(n_changes: int, n_polls: int, value: str) -> str:
    if n_changes == 0:
        return f"constant {value} over {n_polls} polls"
    return f"changing: {n_changes} changes in {n_polls} polls, last {value}"


def classify_bits(
    table: str, addresses: list[int], samples: np.ndarray, times: np.ndarray, machine: str = "modbus"
) -> list[Signal]:
    """One bool signal per coil or discrete input; ``samples`` is polls x addresses (0/1, NaN = no answer)."""
    _check_samples(addresses, samples, times)
    out = []
    for j, a in enumerate(addresses):
        col = samples[:, j]
        changes = _change_times(col, times)
        valid = col[~np.isnan(col)]
        last = int(valid[-1]) if len(valid) else None
        out.append(
            Signal(
                machine=machine,
                name=f"{table}{a}",
                address=f"{table}:{a}",
                dtype="bool",
                value=last,
                times=changes,
                kind="bool",
                note=_describe_changes(len(changes), len(valid), str(last)),
                commented=not changes and last == 0,
            )
        )
    return out


def _float32(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    words = (hi.astype(np.uint32) << np.uint32(16)) | lo.astype(np.uint32)
    return words.astype(np.uint32).view(np.float32).astype(np.float64)


def _is_round(x: float) -> bool:
    return x != 0 and abs(x - float(f"{x:.5g}")) <= 1e-6 * abs(x)


def float32_score(first: np.ndarray, second: np.ndarray, order: str) -> tuple[int, str, float]:
    """How well two register columns (same polls, no NaN) look like one float32 in ``order``.

    3: a plausible float that changes smoothly and whose low word moves with it; 2: the same with a
    low word that stays 0 (coarse values such as 20.5, 21.0; big-endian order only); 1: a constant
    plausible float with a short decimal form (e.g. 21.3) and a non-zero low word; 0: not a float.
    Returns the score, the reason (for the draft's '# guess:' comment) and the roughness (mean
    absolute second difference over the span): of two overlapping candidates the smoother is the
    real pair, as a wrong low word adds noise.
    """
    hi, lo = (first, second) if order == "abcd" else (second, first)
    f = _float32(hi, lo)
    mag = np.abs(f)
    if len(f) == 0 or not np.all(np.isfinite(f)) or np.all(f == 0):
        return 0, "", 0.0
    if not np.all((mag == 0) | ((mag >= 1e-6) & (mag <= 1e9))):
        return 0, "", 0.0
    d = np.abs(np.diff(f))
    changes = int(np.count_nonzero(d))
    if changes == 0:
        if lo[0] != 0 and _is_round(float(f[0])):
            return (
                1,
                f"constant; the pair decodes to the float {float(f[0]):.6g} (could also be two int16)",
                0.0,
            )
        return 0, "", 0.0
    if len(f) < 4:
        return 0, "", 0.0
    lo_changes = int(np.count_nonzero(np.diff(lo)))
    lo_moves = lo_changes * 2 >= changes
    if not (lo_moves or (order == "abcd" and np.all(lo == 0))):
        return 0, "", 0.0
    span = float(f.max() - f.min())
    if float(np.median(d)) > 0.2 * span:
        return 0, "", 0.0
    roughness = float(np.mean(np.abs(np.diff(f, 2)))) / span
    return (
        3 if lo_moves else 2,
        f"the pair decodes to a float moving smoothly over {float(f.min()):.6g}..{float(f.max()):.6g}",
        roughness,
    )


def _int_type(values: np.ndarray) -> str:
    v = values[~np.isnan(values)]
    if not len(v) or v.max() < 0x8000:
        return "int16"
    signed = np.where(v >= 0x8000, v - 65536, v)
    if np.ptp(signed) < np.ptp(v) or np.abs(signed).max() <= 10000:
        return "int16"  # crosses zero, or small negative numbers rather than values near 65535
    return "uint16"


def classify_registers(
    table: str, addresses: list[int], samples: np.ndarray, times: np.ndarray, machine: str = "modbus"
) -> list[Signal]:
    """Signals for answering registers: float32 pairs where the data says so, else int16/uint16 guesses.

    ``samples`` is polls x addresses of raw register values (0..65535, NaN = no answer).
    """
    _check_samples(addresses, samples, times)
    index = {a: j for j, a in enumerate(addresses)}
    candidates = []  # (score, roughness, order preference, address, order, reason)
    for a in addresses:
        if a + 1 not in index:
            continue
        c0, c1 = samples[:, index[a]], samples[:, index[a + 1]]
        ok = ~np.isnan(c0) & ~np.isnan(c1)
        if not ok.any():
            continue
        for pref, order in enumerate(("abcd", "cdab")):
            score, reason, roughness = float32_score(c0[ok], c1[ok], order)
            if score:
                candidates.append((score, roughness, pref, a, order, reason))
    pairs: dict[int, tuple[str, str]] = {}
    taken: set[int] = set()
    for _score, _rough, _pref, a, order, reason in sorted(
        candidates, key=lambda c: (-c[0], c[1], c[2], c[3])
    ):
        if a in taken or a + 1 in taken:
            continue
        taken.update((a, a + 1))
        pairs[a] = (order, reason)
    out = []
    for a in addresses:
        if a in pairs:
            order, reason = pairs[a]
            c0, c1 = samples[:, index[a]], samples[:, index[a + 1]]
            ok = ~np.isnan(c0) & ~np.isnan(c1)
            hi, lo = (c0[ok], c1[ok]) if order == "abcd" else (c1[ok], c0[ok])
            f = _float32(hi, lo)
            changes = times[ok][1:][f[1:] != f[:-1]].tolist()
            suffix = "" if order == "abcd" else ":cdab"
            out.append(
                Signal(
                    machine=machine,
                    name=f"{table}{a}",
                    address=f"{table}:{a}:float32{suffix}",
                    dtype="float32",
                    value=float(f[-1]),
                    times=changes,
                    note=_describe_changes(len(changes), len(f), f"{float(f[-1]):.6g}")
                    + f"; registers {a}..{a + 1}"
                    + ("" if order == "abcd" else ", low word first"),
                    guess=f"float32{suffix} ({reason})",
                )
            )
            continue
        if a - 1 in pairs:
            continue
        col = samples[:, index[a]]
        valid = col[~np.isnan(col)]
        dtype = _int_type(col)
        last = None
        if len(valid):
            last = int(valid[-1]) - (65536 if dtype == "int16" and valid[-1] >= 0x8000 else 0)
        changes = _change_times(col, times)
        why = "no float32 pair found"
        if dtype == "uint16":
            why = "values above 32767; " + why
        elif len(valid) and valid.max() >= 0x8000:
            why = "values above 32767 read as small negatives; " + why
        out.append(
            Signal(
                machine=machine,
                name=f"{table}{a}",
                address=f"{table}:{a}:{dtype}",
                dtype=dtype,
                value=last,
                times=changes,
                note=_describe_changes(len(changes), len(valid), str(last)),
                guess=f"{dtype} ({why})",
                commented=not changes and last == 0,
            )
        )
    return out
