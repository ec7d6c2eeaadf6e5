"""Agents that coordinate through the database (spec category 4).

* :mod:`.registry` -- agents and the connections that allow them to message each other.
* :mod:`.messages`, :mod:`.claims`, :mod:`.settle`, :mod:`.receiving` -- a durable queue:
  leases (visibility timeouts), acknowledgements, retries with backoff, dead letters
  (:mod:`.dead_letters`), expiry, delayed delivery, priorities and FIFO groups;
  at-least-once delivery with exactly-once effects through :mod:`.processing`.
* :mod:`.workflows`, :mod:`.runner` -- versioned DAG workflows whose steps a runner sends
  as messages, resuming from what is recorded after a crash.
* :mod:`.contexts`, :mod:`.memory` -- expiring contexts, relevance-ranked agent memory.

Every function takes the engine of the app store and writes in one transaction.
"""

from cryptotrading.agents.claims import SweepResult, claim_messages, requeue_expired
from cryptotrading.agents.contexts import get_context, purge_expired_contexts, set_context
from cryptotrading.agents.dead_letters import get_message, list_dead_letters, redrive
from cryptotrading.agents.memory import recall, remember
from cryptotrading.agents.messages import (
    MESSAGE_STATUSES,
    Outgoing,
    list_messages,
    send_message,
    send_messages,
)
from cryptotrading.agents.policy import DEFAULT_POLICY, QueuePolicy
from cryptotrading.agents.processing import Processed, process
from cryptotrading.agents.receiving import receive
from cryptotrading.agents.registry import (
    connect_agents,
    connections_of,
    deactivate_agent,
    disconnect_agents,
    get_agent,
    heartbeat,
    list_agents,
    register_agent,
)
from cryptotrading.agents.runner import RunnerPass, WorkflowRunner
from cryptotrading.agents.settle import (
    AckResult,
    acknowledge,
    acknowledge_many,
    extend_lease,
    nack,
)
from cryptotrading.agents.stats import QueueStats, queue_stats
from cryptotrading.agents.step_agents import StepError, reply_in, serve_steps
from cryptotrading.agents.workflow_spec import parse as parse_workflow
from cryptotrading.agents.workflows import (
    EXECUTION_STATUSES,
    ExecutionView,
    cancel_execution,
    define_workflow,
    get_workflow,
    list_executions,
    list_workflows,
    show_execution,
    start_execution,
    workflow_version,
)

__all__ = [
    "DEFAULT_POLICY",
    "EXECUTION_STATUSES",
    "MESSAGE_STATUSES",
    "AckResult",
    "ExecutionView",
    "Outgoing",
    "Processed",
    "QueuePolicy",
    "QueueStats",
    "RunnerPass",
    "StepError",
    "SweepResult",
    "WorkflowRunner",
    "acknowledge",
    "acknowledge_many",
    "cancel_execution",
    "claim_messages",
    "connect_agents",
    "connections_of",
    "deactivate_agent",
    "define_workflow",
    "disconnect_agents",
    "extend_lease",
    "get_agent",
    "get_context",
    "get_message",
    "get_workflow",
    "heartbeat",
    "list_agents",
    "list_dead_letters",
    "list_executions",
    "list_messages",
    "list_workflows",
    "nack",
    "parse_workflow",
    "process",
    "purge_expired_contexts",
    "queue_stats",
    "recall",
    "receive",
    "redrive",
    "register_agent",
    "remember",
    "reply_in",
    "requeue_expired",
    "send_message",
    "send_messages",
    "serve_steps",
    "set_context",
    "show_execution",
    "start_execution",
    "workflow_version",
]
