"""The host end of a serial link to a bedside device: pyserial in, messages and samples out.

Any pyserial URL works: a port (``/dev/ttyACM0``), a pty (``/dev/pts/7``), ``loop://`` and
``socket://host:port``. pyserial is an optional dependency (``pip install 'edgemed[bridge]'``)
imported only when a link is opened.
"""

from __future__ import annotations

import importlib
import time
from collections import deque
from collections.abc import Iterator
from types import ModuleType, TracebackType
from typing import Any

from ..errors import BridgeError
from .messages import (
    Ack,
    Command,
    CommandCode,
    Message,
    Nack,
    TimeReq,
    TimeResp,
    Unknown,
    Waveform,
)
from .protocol import FLAG_ACK_REQUEST, Frame, encode_frame
from .stream import BridgeStats, Receiver, SampleBlock

__all__ = ["BridgeLink"]

_NACK_UNKNOWN_TYPE = 1
_NACK_UNSUPPORTED = 3


def _import_serial() -> ModuleType:
    try:
        return importlib.import_module("serial")
    except ImportError as exc:
        raise BridgeError(
            "the firmware bridge needs pyserial: pip install 'edgemed[bridge]'"
        ) from exc


class BridgeLink:
    """One open link. Iterate :meth:`stream` for per-channel :class:`SampleBlock` s (what a
    streaming pipeline consumes) or :meth:`messages` for every decoded message. Frames the
    device sends with ACK_REQUEST (alerts) are acknowledged automatically.
    """

    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 921600,
        read_timeout: float = 0.05,
    ) -> None:
        serial = _import_serial()
        try:
            self._port: Any = serial.serial_for_url(url, baudrate=baudrate, timeout=read_timeout)
        except (serial.SerialException, ValueError, OSError) as exc:
            raise BridgeError(f"cannot open {url!r}: {exc}") from exc
        self._serial_error: type[Exception] = serial.SerialException
        self.url = url
        self.receiver = Receiver()
        self._seq = 0
        self._queue: deque[tuple[Frame, Message]] = deque()
        self._best_rtt: int | None = None
        self._hello_requested = -1e9

    @property
    def stats(self) -> BridgeStats:
        """The receiver's link statistics."""
        return self.receiver.stats

    def send(self, msg: Message, *, ack_request: bool = False) -> int:
        """Encode and write one message; returns the sequence number it used."""
        seq = self._seq
        flags = FLAG_ACK_REQUEST if ack_request else 0
        msg_type = msg.type if isinstance(msg, Unknown) else msg.TYPE
        frame = encode_frame(msg_type, msg.payload(), seq=seq, flags=flags)
        self._seq = (seq + 1) & 0xFFFF
        try:
            # write() returns once the bytes are handed to the OS; no tcdrain (flush()): the
            # frame needs no wait for the UART, and a pty whose peer closed fails tcdrain.
            self._port.write(frame)
        except (self._serial_error, OSError) as exc:
            raise BridgeError(f"{self.url}: write failed: {exc}") from exc
        return seq

    def command(
        self, code: CommandCode, *, channel: int = 0xFF, arg: int = 0, timeout: float = 2.0
    ) -> Ack:
        """Send a COMMAND and wait for its ACK; a NACK or no answer raises BridgeError.
        Messages that arrive meanwhile stay queued for :meth:`messages`/:meth:`stream`."""
        seq = self.send(Command(command=code, channel=channel, arg=arg), ack_request=True)
        answer = self._wait_for(lambda m: isinstance(m, Ack) and m.seq == seq, timeout)
        if answer is None:
            raise BridgeError(f"{self.url}: no answer to {code.name} within {timeout} s")
        assert isinstance(answer, Ack)
        if isinstance(answer, Nack):
            raise BridgeError(f"{self.url}: device refused {code.name} (NACK {answer.status})")
        return answer

    def time_sync(self, *, rounds: int = 5, timeout: float = 1.0) -> float:
        """NTP-style TIME_REQ/TIME_RESP exchanges; returns the offset (device - host,
        microseconds) of the one with the smallest round trip so far,
        which converts every later sample timestamp to host time."""
        for _ in range(rounds):
            t1 = self._send_time_req()
            self._wait_for(lambda m, t1=t1: isinstance(m, TimeResp) and m.t1 == t1, timeout)
        if self.receiver.clock_offset_us is None:
            raise BridgeError(f"{self.url}: no TIME_RESP to {rounds} requests")
        return self.receiver.clock_offset_us

    def _send_time_req(self) -> int:
        t1 = time.time_ns() // 1000
        self.send(TimeReq(t1=t1))
        return t1

    def _on_time_resp(self, resp: TimeResp) -> None:
        t4 = time.time_ns() // 1000
        rtt = (t4 - resp.t1) - (resp.t3 - resp.t2)
        if rtt >= 0 and (self._best_rtt is None or rtt < self._best_rtt):
            self._best_rtt = rtt
            self.receiver.clock_offset_us = ((resp.t2 - resp.t1) + (resp.t3 - t4)) / 2

    def _wait_for(self, match: Any, timeout: float) -> Message | None:
        # Everything else read meanwhile is queued, including what arrived after the match in
        # the same read: returning from inside the batch lost those frames (found by the pty
        # end-to-end test: the frames after START's ACK went missing).
        deadline = time.monotonic() + timeout
        found: Message | None = None
        while found is None and time.monotonic() < deadline:
            for item in self._read():
                if found is None and match(item[1]):
                    found = item[1]
                else:
                    self._queue.append(item)
        return found

    def _read(self) -> list[tuple[Frame, Message]]:
        try:
            data = self._port.read(max(1, self._port.in_waiting))
        except (self._serial_error, OSError) as exc:
            raise BridgeError(f"{self.url}: read failed: {exc}") from exc
        items = list(self.receiver.feed(data)) if data else []
        for frame, msg in items:
            if isinstance(msg, TimeResp):
                self._on_time_resp(msg)
            elif isinstance(msg, Waveform) and not self.receiver.knows_channels(msg):
                self._request_hello()
            if frame.flags & FLAG_ACK_REQUEST and not isinstance(msg, Ack):
                self._answer(frame, msg)
        return items

    def _request_hello(self) -> None:
        # Samples of undeclared channels cannot be scaled (the HELLO was lost or the host
        # joined mid-stream): ask for the channel table again, at most once a second.
        now = time.monotonic()
        if now - self._hello_requested > 1.0:
            self._hello_requested = now
            self.send(Command(command=CommandCode.SEND_HELLO))

    def _answer(self, frame: Frame, msg: Message) -> None:
        # Only device-to-host messages are acknowledged: a host takes no commands, so a
        # COMMAND/TIME_REQ arriving here (e.g. a looped-back line) is refused, never ACKed.
        status = 0
        if isinstance(msg, Unknown):
            status = _NACK_UNKNOWN_TYPE
        elif isinstance(msg, Command | TimeReq):
            status = _NACK_UNSUPPORTED
        cls = Nack if status else Ack
        self.send(cls(seq=frame.seq, type=frame.type, status=status))

    def messages(self, *, idle_timeout: float | None = None) -> Iterator[Message]:
        """Every decoded message, in order. Ends after ``idle_timeout`` seconds without a
        byte (None: never)."""
        last = time.monotonic()
        while True:
            while self._queue:
                yield self._queue.popleft()[1]
            before = self.receiver.stats.bytes_received
            self._queue.extend(self._read())
            if self.receiver.stats.bytes_received != before:
                last = time.monotonic()
            elif idle_timeout is not None and time.monotonic() - last > idle_timeout:
                return

    def stream(self, *, idle_timeout: float | None = None) -> Iterator[SampleBlock]:
        """Per-channel sample blocks with timestamps, in arrival order (channels of one
        WAVEFORM in their frame order)."""
        for msg in self.messages(idle_timeout=idle_timeout):
            if isinstance(msg, Waveform):
                yield from self.receiver.blocks(msg)

    def close(self) -> None:
        self._port.close()

    def __enter__(self) -> BridgeLink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
