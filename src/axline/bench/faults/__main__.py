"""``python -m axline.bench.faults``: the same as ``axline bench faults`` (the kill -9 scenario starts
its service processes this way)."""

import argparse
import sys

from axline.bench.faults import add_arguments, run

p = argparse.ArgumentParser(description="the data path under faults")
add_arguments(p)
sys.exit(run(p.parse_args()))
