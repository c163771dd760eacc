"""Serial link to bedside sensor microcontrollers (``firmware_bridge/PROTOCOL.md``).

Stage 1 (input) of the data flow. The frame layer, messages and :class:`Receiver` are pure
Python; :class:`BridgeLink` opens a port through pyserial (``pip install 'edgemed[bridge]'``)
and yields per-channel :class:`SampleBlock` s for a streaming pipeline::

    from edgemed.bridge import BridgeLink, CommandCode
    with BridgeLink("/dev/ttyACM0") as link:
        link.command(CommandCode.START)
        for block in link.stream():
            block.channel.label, block.first_index, block.values  # mV, uV, ... per HELLO

``edgemed bridge listen PORT`` prints decoded traffic and link statistics.
"""

from __future__ import annotations

from .link import BridgeLink
from .messages import (
    Ack,
    Alert,
    ChannelInfo,
    Command,
    CommandCode,
    Hello,
    Message,
    Nack,
    SampleFormat,
    TimeReq,
    TimeResp,
    Unknown,
    Vital,
    Vitals,
    Waveform,
    parse_message,
)
from .protocol import DecodeError, Frame, FrameDecoder, MsgType, crc32, encode_frame
from .stream import BridgeStats, Receiver, SampleBlock

__all__ = [
    "Ack",
    "Alert",
    "BridgeLink",
    "BridgeStats",
    "ChannelInfo",
    "Command",
    "CommandCode",
    "DecodeError",
    "Frame",
    "FrameDecoder",
    "Hello",
    "Message",
    "MsgType",
    "Nack",
    "Receiver",
    "SampleBlock",
    "SampleFormat",
    "TimeReq",
    "TimeResp",
    "Unknown",
    "Vital",
    "Vitals",
    "Waveform",
    "crc32",
    "encode_frame",
    "parse_message",
]
