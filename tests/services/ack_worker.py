"""Consumer for the kill -9 test: claims one message at a time and acknowledges it,
forever (the test kills it with SIGKILL)."""

from __future__ import annotations

import sys
import time

from cryptotrading.db import create_store_engine
from cryptotrading.services.agents import acknowledge, claim_messages


def main(url: str, receiver: str) -> None:
    engine = create_store_engine(url)
    while True:
        for message in claim_messages(engine, receiver, limit=1):
            time.sleep(0.002)  # the work; a kill here leaves the message delivered
            acknowledge(engine, message.message_id)
        sys.stdout.write(".")
        sys.stdout.flush()


if __name__ == "__main__":
    main(*sys.argv[1:3])
