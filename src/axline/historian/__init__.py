"""Historians: where readings and events are kept."""

from axline.historian.base import Buckets, Event, Historian, Series
from axline.historian.factory import open_historian

__all__ = ["Buckets", "Event", "Historian", "Series", "open_historian"]
