"""axline: an on-premise AI transformation kit for small and midsize manufacturers."""

__version__ = "0.1.0"
