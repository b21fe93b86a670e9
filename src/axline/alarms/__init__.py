"""Alarm management: the ISA-18.2 life cycle of alarm events and alarm-system performance."""

from axline.alarms.lifecycle import (
    PRIORITIES,
    STATES,
    AlarmActionError,
    acknowledge,
    alarm_json,
    alarm_state,
    designed_suppression,
    priority_of,
    shelve,
    unshelve,
)
from axline.alarms.performance import performance

__all__ = ["PRIORITIES", "STATES", "AlarmActionError", "acknowledge", "alarm_json", "alarm_state",
           "designed_suppression", "performance", "priority_of", "shelve", "unshelve"]
