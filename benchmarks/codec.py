"""Codec micro-benchmarks: minisio's Socket.IO codec against python-socketio's parser.

Both sides do the same work per operation:

* encode: build the packet object from Python data, serialize it to the text
  frame (and the attachments); the Engine.IO ``4`` prefix is left out on both
  sides, since both add it in their transport code;
* decode: turn the text frame (and the attachment frames) into the packet
  with its data, attachments put back in place.

Run alone with ``python benchmarks/codec.py`` or through ``run.py``.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minisio import sio

# -- the packets ----------------------------------------------------------------
CHAT = [
    "chat",
    {"from": "Xq3cZ1dKu0pLrA9vNw2b", "name": "alice", "text": "hello everyone, lunch at noon?"},
]
BIG = [
    "data",
    {
        "items": [
            {"id": i, "name": f"item-{i}", "price": i * 1.25, "tags": ["a", "bb"], "ok": True}
            for i in range(125)
        ]
    },
]
BINARY = ["file", {"name": "photo.jpg", "size": 4096, "data": bytes(range(256)) * 16}]
ACK_ID = 17
ACK = [{"ok": True, "id": "Xq3cZ1dKu0pLrA9vNw2b"}]

#: (name, packet type, data, ack id)
CASES: list[tuple[str, sio.PacketType, Any, int | None]] = [
    ("chat event ~100 B", sio.PacketType.EVENT, CHAT, None),
    ("event ~10 KB", sio.PacketType.EVENT, BIG, None),
    ("binary event 4 KB", sio.PacketType.EVENT, BINARY, None),
    ("ack", sio.PacketType.ACK, ACK, ACK_ID),
]


def _minisio_ops(
    kind: sio.PacketType, data: Any, ack_id: int | None
) -> tuple[Callable[[], object], Callable[[], object], int]:
    frames = sio.encode(sio.Packet(kind, data, "/", ack_id))
    text = frames[0].decode()
    attachments = frames[1:]
    decoder = sio.Decoder()
    Packet, encode = sio.Packet, sio.encode

    def enc() -> object:
        return encode(Packet(kind, data, "/", ack_id))

    if attachments:

        def dec() -> object:
            decoder.feed(text)
            for attachment in attachments:
                packet = decoder.feed(attachment)
            return packet

    else:

        def dec() -> object:
            return decoder.feed(text)

    expected = decoder.feed(text)
    for attachment in attachments:
        expected = decoder.feed(attachment)
    assert expected is not None and expected.data == _plain(data), "minisio round trip"
    return enc, dec, len(frames[0])


def _psio_ops(
    kind: sio.PacketType, data: Any, ack_id: int | None
) -> tuple[Callable[[], object], Callable[[], object], int] | None:
    try:
        from socketio import packet as psio_packet
    except ImportError:
        return None
    PPacket = psio_packet.Packet
    ptype = int(kind)
    encoded = PPacket(ptype, data=data, id=ack_id).encode()
    if isinstance(encoded, list):
        text, attachments = encoded[0], encoded[1:]
    else:
        text, attachments = encoded, []

    def enc() -> object:
        return PPacket(ptype, data=data, id=ack_id).encode()

    if attachments:

        def dec() -> object:
            packet = PPacket(encoded_packet=text)
            for attachment in attachments:
                packet.add_attachment(attachment)
            return packet

    else:

        def dec() -> object:
            return PPacket(encoded_packet=text)

    result = dec()
    assert _plain(result.data) == _plain(data), "python-socketio round trip"  # type: ignore[attr-defined]
    return enc, dec, len(text)


def _plain(value: Any) -> Any:
    """Tuples as lists, so decoded data compares equal to the original."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _rate(fn: Callable[[], object], seconds: float) -> float:
    """Operations per second of ``fn``, timed over about ``seconds``."""
    n = 1
    while True:  # calibrate: grow the batch until it takes a tenth of the budget
        start = time.perf_counter()
        for _ in range(n):
            fn()
        took = time.perf_counter() - start
        if took >= seconds / 10:
            break
        n *= 4
    batch = max(1, int(n * (seconds / 5) / took))
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(batch):
            fn()
        rates.append(batch / (time.perf_counter() - start))
    return statistics.median(rates)


def run(seconds: float = 0.5, log: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """One repetition of every case: ops/s for both codecs, and the ratios."""
    rows = []
    for name, kind, data, ack_id in CASES:
        m_enc, m_dec, size = _minisio_ops(kind, data, ack_id)
        row: dict[str, Any] = {"case": name, "bytes": size}
        row["minisio_encode"] = _rate(m_enc, seconds)
        row["minisio_decode"] = _rate(m_dec, seconds)
        ref = _psio_ops(kind, data, ack_id)
        if ref is not None:
            p_enc, p_dec, _ = ref
            row["psio_encode"] = _rate(p_enc, seconds)
            row["psio_decode"] = _rate(p_dec, seconds)
            row["encode_ratio"] = row["minisio_encode"] / row["psio_encode"]
            row["decode_ratio"] = row["minisio_decode"] / row["psio_decode"]
        log(
            f"  codec {name}: encode {row['minisio_encode']:,.0f}/s"
            f" decode {row['minisio_decode']:,.0f}/s"
            + (
                f" (x{row['encode_ratio']:.1f} / x{row['decode_ratio']:.1f} python-socketio)"
                if ref is not None
                else ""
            )
        )
        rows.append(row)
    return rows


if __name__ == "__main__":
    run()
