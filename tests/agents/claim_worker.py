"""Consumer process for the concurrent-claim test: waits for a start file, then
claims messages of one receiver until none is left and prints their ids as JSON."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from cryptotrading.agents import claim_messages
from cryptotrading.db import create_store_engine


def main(url: str, receiver: str, start_file: str) -> None:
    engine = create_store_engine(url)
    while not Path(start_file).exists():
        time.sleep(0.005)
    claimed: list[str] = []
    while batch := claim_messages(engine, receiver, limit=2):
        claimed.extend(message.message_id for message in batch)
        time.sleep(0.005)  # "work" outside the transaction, so the consumers interleave
    engine.dispose()
    sys.stdout.write(json.dumps(claimed))


if __name__ == "__main__":
    main(*sys.argv[1:4])
