"""MLLP (HL7 v2 over TCP) client: frame a message, wait for its ACK.

Framing: ``0x0B`` message ``0x1C 0x0D``. One message per connection, which every MLLP
listener accepts (hl7apy's closes the connection after each reply).
"""

from __future__ import annotations

import socket

from ...errors import SyncError

__all__ = ["MllpError", "send_mllp"]

START, END = b"\x0b", b"\x1c\x0d"
MAX_REPLY = 1 << 20


class MllpError(SyncError):
    """No acknowledgement came back (connection refused or dropped, timeout, bad framing)."""


def send_mllp(host: str, port: int, er7: str, *, timeout: float = 10.0) -> str:
    """Send one ER7 message; returns the reply (the ACK, unframed). Raises MllpError."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(START + er7.encode("utf-8") + END)
            reply = b""
            while not reply.endswith(END):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
                if len(reply) > MAX_REPLY:
                    raise MllpError("MLLP reply too large")
    except OSError as exc:
        raise MllpError(f"MLLP {host}:{port}: {exc}") from exc
    if not (reply.startswith(START) and reply.endswith(END)):
        raise MllpError(f"MLLP {host}:{port}: no framed reply ({len(reply)} bytes)")
    return reply[1:-2].decode("utf-8", errors="replace")
