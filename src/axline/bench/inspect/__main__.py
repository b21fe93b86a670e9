"""``python -m axline.bench.inspect``: the same as ``axline bench inspect``."""

import argparse
import sys

import axline.bench.inspect as _inspect

_parser = argparse.ArgumentParser(prog="axline bench inspect", description=_inspect.__doc__)
_inspect.add_arguments(_parser)
sys.exit(_inspect.run(_parser.parse_args()))
