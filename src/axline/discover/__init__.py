"""`axline discover`: list what a machine offers before anyone buys anything.

Browses (OPC UA), scans and polls (Modbus TCP) or listens to (MQTT, Sparkplug B) a machine, then
writes a draft plant file and a data-readiness inventory (which signals, their types and units, how
often they change, gaps) as Markdown and HTML.

- ``opcua://host:4840`` (or ``opc.tcp://``): browse the address space, subscribe for ``--listen``.
- ``modbus://host:502 --scan hr:0-199,co:0-63 --unit-id 1``: read the ranges in blocks (at most 125
  registers or 2000 bits a request); a block the device refuses with an exception is bisected to
  find the addresses that answer. Over ``--listen`` the answering addresses are polled and
  classified (constant or changing, and how often); register pairs that decode to a smoothly
  changing float32 are proposed as ``float32``, other registers as ``int16``/``uint16`` (a guess,
  marked ``# guess:`` in the draft).
- ``mqtt://[user[:password]@]host:1883 --topics 'plant/#'``: subscribe (default ``#``) for
  ``--listen``; per topic the message count, rate, largest gap and payload kind (number, JSON
  object with numeric fields, Sparkplug B, binary, text). Each numeric JSON field becomes a signal
  addressed in the MQTT connector's grammar (``topic#$.field``); Sparkplug B metrics (from births)
  become tags of a ``sparkplug`` connector (``group/edge/device:Metric``).

The package, one module per part: ``signal`` (what is found), ``opcua``, ``modbus`` (with
``registers``, which classifies polled values) and ``mqtt`` (with ``payload``, which reads one
message) for the protocols, ``draft`` (the draft plant file), ``inventory`` (Markdown and HTML) and
``command`` (the ``axline discover`` command).
"""

from axline.discover.command import add_arguments, parse_duration, run
from axline.discover.draft import draft_plant
from axline.discover.inventory import inventory_html, inventory_markdown, inventory_rows, refused_text
from axline.discover.modbus import DEFAULT_MODBUS_SCAN, discover_modbus, parse_scan
from axline.discover.mqtt import MqttListener, discover_mqtt
from axline.discover.opcua import discover_opcua
from axline.discover.payload import PayloadInfo, classify_payload
from axline.discover.registers import classify_bits, classify_registers, float32_score
from axline.discover.signal import Signal, guess_unit, ident

__all__ = [
    "DEFAULT_MODBUS_SCAN",
    "MqttListener",
    "PayloadInfo",
    "Signal",
    "add_arguments",
    "classify_bits",
    "classify_payload",
    "classify_registers",
    "discover_modbus",
    "discover_mqtt",
    "discover_opcua",
    "draft_plant",
    "float32_score",
    "guess_unit",
    "ident",
    "inventory_html",
    "inventory_markdown",
    "inventory_rows",
    "parse_duration",
    "parse_scan",
    "refused_text",
    "run",
]
