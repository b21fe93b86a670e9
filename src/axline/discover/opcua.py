"""Discovery over OPC UA: browse the address space, read units and ranges, count updates."""

from __future__ import annotations

import asyncio
import time

from axline.discover.signal import Signal


async def discover_opcua(
    url: str, listen_s: float = 10.0, max_nodes: int = 20000
) -> tuple[list[Signal], dict]:
    """Browse ``url``, subscribe to every variable for ``listen_s`` seconds; the signals and an info dict."""
    from asyncua import Client, ua

    signals: list[Signal] = []
    async with Client(url, timeout=10) as client:
        objects = client.nodes.objects
        stack = [(objects, [])]
        seen = 0
        while stack and seen < max_nodes:
            node, trail = stack.pop()
            for child in await node.get_children(refs=ua.ObjectIds.HierarchicalReferences):
                seen += 1
                if child.nodeid.NamespaceIndex == 0:
                    continue  # the server's own nodes
                nclass = await child.read_node_class()
                name = (await child.read_browse_name()).Name
                if nclass == ua.NodeClass.Object:
                    stack.append((child, [*trail, name]))
                elif nclass == ua.NodeClass.Variable:
                    if name in ("EngineeringUnits", "EURange") or "#" in str(child.nodeid.Identifier):
                        continue  # properties, read below with their variable
                    signals.append(await _describe_opcua(child, name, trail))
        t0 = time.monotonic()
        if listen_s > 0 and signals:
            by_id = {s.address: s for s in signals}

            class Handler:
                def datachange_notification(self, node, val, data):  # noqa: N802 - asyncua's name
                    s = by_id.get(node.nodeid.to_string())
                    if s is not None:
                        s.times.append(time.monotonic() - t0)

            sub = await client.create_subscription(100, Handler())
            nodes = [client.get_node(s.address) for s in signals]
            await sub.subscribe_data_change(nodes, queuesize=100, sampling_interval=0)
            t0 = time.monotonic()
            await asyncio.sleep(listen_s)
            await sub.delete()
        info = {
            "protocol": "opcua",
            "endpoint": url,
            "listened_s": listen_s,
            "namespaces": await client.get_namespace_array(),
        }
    return signals, info


async def _describe_opcua(node, name: str, trail: list[str]) -> Signal:
    from asyncua import ua

    try:
        dv = await node.read_data_value()
        value = dv.Value.Value if dv.Value else None
        vtype = dv.Value.VariantType.name if dv.Value else "Null"
    except Exception:  # noqa: BLE001 - a node we may not read is still worth listing
        value, vtype = None, "unreadable"
    unit, lo, hi = "", None, None
    for prop in await node.get_properties():
        pname = (await prop.read_browse_name()).Name
        try:
            pval = await prop.read_value()
        except Exception:  # noqa: BLE001
            continue
        if pname == "EngineeringUnits":
            unit = (
                pval
                if isinstance(pval, str)
                else getattr(pval, "DisplayName", None) and pval.DisplayName.Text or ""
            )
        elif pname == "EURange":
            if isinstance(pval, list | tuple) and len(pval) == 2:
                lo, hi = float(pval[0]), float(pval[1])
            elif hasattr(pval, "Low"):
                lo, hi = float(pval.Low), float(pval.High)
    try:
        access = await node.read_attribute(ua.AttributeIds.UserAccessLevel)
        writable = bool(access.Value.Value & ua.AccessLevel.CurrentWrite.mask)
    except Exception:  # noqa: BLE001
        writable = False
    machine = "/".join(trail[-2:]) if len(trail) >= 2 else (trail[-1] if trail else "root")
    return Signal(
        machine=machine,
        name=name,
        address=node.nodeid.to_string(),
        dtype=vtype,
        unit=str(unit or ""),
        lo=lo,
        hi=hi,
        writable=writable,
        value=value,
    )
