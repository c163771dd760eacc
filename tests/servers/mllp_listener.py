"""A real MLLP listener (hl7apy's MLLPServer) that ACKs every ORU^R01 with AA, for tests.

Usage: python mllp_listener.py PORT LOG. Each received MSH-10 is appended to LOG (fsynced)
before the ACK is written back.
"""

from __future__ import annotations

import os
import sys

from hl7apy.core import Message
from hl7apy.mllp import AbstractHandler, MLLPServer
from hl7apy.parser import parse_message

LOG = sys.argv[2]


class Ack(AbstractHandler):  # type: ignore[misc]
    def reply(self) -> str:
        incoming = parse_message(self.incoming_message, find_groups=False)
        control = incoming.msh.msh_10.value
        with open(LOG, "a") as log:
            log.write(control + "\n")
            log.flush()
            os.fsync(log.fileno())
        ack = Message("ACK", version="2.5")
        ack.msh.msh_9 = "ACK^R01^ACK"
        ack.msh.msh_10 = "A" + control[:19]
        ack.msa.msa_1 = "AA"
        ack.msa.msa_2 = control
        return "\x0b" + ack.to_er7() + "\x1c\x0d"


if __name__ == "__main__":
    server = MLLPServer("127.0.0.1", int(sys.argv[1]), {"ORU^R01^ORU_R01": (Ack,)})
    print("ready", flush=True)
    server.serve_forever()
