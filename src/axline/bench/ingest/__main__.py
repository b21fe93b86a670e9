"""``python -m axline.bench.ingest``: the same as ``axline bench ingest``."""

import argparse

import axline.bench.ingest as _ingest

_p = argparse.ArgumentParser(prog="python -m axline.bench.ingest", description=_ingest.__doc__.splitlines()[0])
_ingest.add_arguments(_p)
raise SystemExit(_ingest.run(_p.parse_args()))
