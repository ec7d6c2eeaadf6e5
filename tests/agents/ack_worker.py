"""Consumer for the kill -9 test: claims one message at a time and acknowledges it,
forever (the test kills it with SIGKILL)."""

from __future__ import annotations

import sys
import time

from cryptotrading.agents import acknowledge, claim_messages
from cryptotrading.db import create_store_engine


def main(url: str, receiver: str, lease: str) -> None:
    engine = create_store_engine(url)
    while True:
        for message in claim_messages(engine, receiver, limit=1, lease_seconds=float(lease)):
            time.sleep(0.002)  # the work; a kill here leaves the message delivered
            acknowledge(engine, message.message_id, message.receipt)
        sys.stdout.write(".")
        sys.stdout.flush()


if __name__ == "__main__":
    main(*sys.argv[1:4])
