"""``python -m axline.bench.knowhow``: the same as ``axline bench knowhow``."""

import argparse

import axline.bench.knowhow as _knowhow

ap = argparse.ArgumentParser(prog="python -m axline.bench.knowhow", description=_knowhow.__doc__.splitlines()[0])
_knowhow.add_arguments(ap)
raise SystemExit(_knowhow.run(ap.parse_args()))
