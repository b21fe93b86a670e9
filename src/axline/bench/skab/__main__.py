"""``python -m axline.bench.skab``: the same as ``axline bench skab``."""

import argparse

import axline.bench.skab as _skab

_p = argparse.ArgumentParser(prog="python -m axline.bench.skab", description=_skab.__doc__.splitlines()[0])
_skab.add_arguments(_p)
raise SystemExit(_skab.run(_p.parse_args()))
