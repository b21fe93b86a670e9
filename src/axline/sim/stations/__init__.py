"""The five stations of the virtual line, one module each: ``base`` (part flow, random streams,
the part record), ``press``, ``cnc``, ``furnace``, ``vision`` and ``packer`` (their physics)."""
