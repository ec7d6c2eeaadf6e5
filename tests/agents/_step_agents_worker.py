"""The step agents of the runner kill test, in their own process: ``alpha``, ``beta``
and ``gamma`` serve their step requests (:func:`~cryptotrading.agents.serve_steps`)
until STOP_FILE exists. Each step's side effect is an ``agent_contexts`` row written
through the session that also replies and acknowledges (type ``side-effect``, data
``{"execution": ..., "step": ...}``): a step performed twice would leave two rows."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from cryptotrading.agents import QueuePolicy, serve_steps
from cryptotrading.db import create_store_engine
from cryptotrading.models.agents import A2AMessage, AgentContext

AGENTS = ("alpha", "beta", "gamma")


def perform(agent: str) -> Any:
    def work(session: Session, given: dict[str, Any], message: A2AMessage) -> dict[str, Any]:
        execution, step = message.payload["execution_id"], message.payload["step_id"]
        session.add(
            AgentContext(
                agent_id=agent,
                context_type="side-effect",
                context_data={"execution": execution, "step": step},
            )
        )
        return {"by": agent, "n": int(given.get("n", 0)) + 1}

    return work


def main(url: str, stop_file: str) -> None:
    engine = create_store_engine(url)
    policy = QueuePolicy(lease_seconds=10)
    stop = Path(stop_file)
    served = 0
    while not stop.exists():
        round_ = sum(
            len(serve_steps(engine, agent, perform(agent), limit=20, policy=policy))
            for agent in AGENTS
        )
        served += round_
        if not round_:
            time.sleep(0.02)  # idle: leave SQLite's write lock to the runner
    engine.dispose()
    sys.stdout.write(str(served))


if __name__ == "__main__":
    main(*sys.argv[1:3])
