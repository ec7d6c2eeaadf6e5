"""``cryptotrading agents send/receive/ack/nack/extend/messages`` and ``agents
dead-letters ...``: the message queue, thin over :mod:`cryptotrading.agents`."""

from __future__ import annotations

import typer

from cryptotrading import agents
from cryptotrading.cli._common import command_group
from cryptotrading.cli._output import JsonOption, emit
from cryptotrading.cli.agents import agents_app
from cryptotrading.cli.agents_support import (
    MAX_FILE_BYTES,
    AgentArgument,
    MessageArgument,
    ReceiptOption,
    emit_row,
    json_input,
    moment,
    open_agents,
    say,
    table,
)
from cryptotrading.common.views import row_view
from cryptotrading.errors import ValidationError
from cryptotrading.models.agents import A2AMessage

dead_letters_app = command_group("Dead letters: messages whose every delivery failed.")
agents_app.add_typer(dead_letters_app, name="dead-letters")


def _received(as_json: bool, agent_id: str, found: list[A2AMessage]) -> None:
    lease = found[0].lease_expires_at if found else None
    emit(
        as_json,
        [row_view(m) for m in found],
        lambda: table(
            f"received by {agent_id}" + (f", leased until {lease:%H:%M:%S} UTC" if lease else ""),
            ["message_id", "receipt", "from", "type", "attempt", "payload"],
            [
                (
                    m.message_id,
                    m.receipt,
                    m.sender_id,
                    m.message_type,
                    f"{m.attempts}/{m.max_attempts}",
                    m.payload,
                )
                for m in found
            ],
            empty="no messages",
        ),
    )


def _listed(as_json: bool, agent_id: str, found: list[A2AMessage]) -> None:
    emit(
        as_json,
        [row_view(m) for m in found],
        lambda: table(
            f"messages of {agent_id}",
            ["message_id", "from", "type", "prio", "status", "attempt", "payload / last error"],
            [
                (
                    m.message_id,
                    m.sender_id,
                    m.message_type,
                    m.priority,
                    m.status,
                    f"{m.attempts}/{m.max_attempts}",
                    m.last_error if m.status in ("dead", "expired") else m.payload,
                )
                for m in found
            ],
            empty="no messages",
        ),
    )


@agents_app.command("send")
def send(
    ctx: typer.Context,
    sender: str = typer.Argument(..., help="Sending agent id."),
    receiver: str = typer.Argument(..., help="Receiving agent id."),
    payload: str | None = typer.Option(None, "--payload", help="The payload: a JSON object."),
    payload_file: str | None = typer.Option(
        None, "--payload-file", help="Read the payload from this file ('-': stdin)."
    ),
    message_type: str = typer.Option("message", "--type", help="Message type."),
    priority: int = typer.Option(0, "--priority", help="-1000..1000; higher is delivered first."),
    correlation_id: str | None = typer.Option(
        None, "--correlation-id", help="Matches a reply to its request."
    ),
    group: str | None = typer.Option(
        None, "--group", help="FIFO group: messages of a group are delivered one at a time."
    ),
    idempotency_key: str | None = typer.Option(
        None, "--idempotency-key", help="Lets the receiver process the message once."
    ),
    ttl: float | None = typer.Option(
        None, "--ttl", help="Seconds: expire when not delivered by then."
    ),
    delay: float | None = typer.Option(None, "--delay", help="Seconds before it is delivered."),
    max_attempts: int | None = typer.Option(
        None, "--max-attempts", help="Deliveries before it is dead-lettered (default: setting)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Queue a message from SENDER to RECEIVER.

    Both must be active and connected (unless CRYPTOTRADING_A2A_OPEN_MESSAGING)."""
    env = open_agents(ctx)
    document = json_input(
        payload,
        payload_file,
        option="--payload",
        file_option="--payload-file",
        limit=max(MAX_FILE_BYTES, 4 * env.policy.max_payload_bytes),
        required=True,
    )
    message = agents.send_message(
        env.engine,
        sender,
        receiver,
        document or {},
        message_type=message_type,
        priority=priority,
        correlation_id=correlation_id,
        group_key=group,
        idempotency_key=idempotency_key,
        ttl_seconds=ttl,
        delay_seconds=delay,
        max_attempts=max_attempts,
        policy=env.policy,
    )
    emit_row(as_json, f"message {message.message_id}", row_view(message))


@agents_app.command("receive")
def receive(
    ctx: typer.Context,
    agent_id: str = AgentArgument,
    limit: int = typer.Option(10, "--limit", help="Most messages to claim."),
    lease: float | None = typer.Option(
        None, "--lease", help="Seconds to hold them before redelivery (default: setting)."
    ),
    wait: float = typer.Option(
        0.0, "--wait", help="Seconds to wait for a first message (long-poll, at most 3600)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Claim an agent's next messages with a lease (long-poll with --wait).

    Settle each with `ack` or `nack` (and its receipt) before the lease passes, or it is
    delivered again."""
    env = open_agents(ctx)
    found = agents.receive(
        env.engine, agent_id, limit=limit, wait_seconds=wait, lease_seconds=lease, policy=env.policy
    )
    _received(as_json, agent_id, found)


@agents_app.command("ack")
def ack(
    ctx: typer.Context,
    message_id: str = MessageArgument,
    receipt: str | None = ReceiptOption,
    as_json: bool = JsonOption,
) -> None:
    """Acknowledge a delivered message: processed, never delivered again."""
    message = agents.acknowledge(open_agents(ctx).engine, message_id, receipt)
    say(as_json, row_view(message), f"message {message.message_id} processed")


@agents_app.command("nack")
def nack(
    ctx: typer.Context,
    message_id: str = MessageArgument,
    reason: str = typer.Option(..., "--reason", help="Why it failed (kept as last_error)."),
    receipt: str | None = ReceiptOption,
    delay: float | None = typer.Option(
        None, "--delay", help="Seconds before redelivery (default: exponential backoff)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Give a delivered message back with a reason.

    It is delivered again after a backoff, or dead-lettered after its last attempt."""
    env = open_agents(ctx)
    message = agents.nack(
        env.engine, message_id, receipt, reason=reason, delay_seconds=delay, policy=env.policy
    )
    line = (
        f"message {message.message_id} dead-lettered after {message.attempts} attempt(s)"
        if message.status == "dead"
        else f"message {message.message_id} pending again from {moment(message.not_before)}"
    )
    say(as_json, row_view(message), line)


@agents_app.command("extend")
def extend(
    ctx: typer.Context,
    message_id: str = MessageArgument,
    receipt: str = typer.Option(..., "--receipt", help="The receipt of the delivery."),
    seconds: float = typer.Option(..., "--seconds", help="Keep the lease this long from now."),
    as_json: bool = JsonOption,
) -> None:
    """Extend the lease of a delivery (long processing)."""
    message = agents.extend_lease(open_agents(ctx).engine, message_id, receipt, seconds=seconds)
    say(
        as_json,
        row_view(message),
        f"message {message.message_id} leased until {moment(message.lease_expires_at)}",
    )


@agents_app.command("messages")
def messages(
    ctx: typer.Context,
    agent_id: str = AgentArgument,
    status: str | None = typer.Option(
        None, "--status", help="pending, delivered, processed, dead or expired."
    ),
    limit: int = typer.Option(100, "--limit", help="At most this many."),
    as_json: bool = JsonOption,
) -> None:
    """An agent's messages, newest first, without claiming them."""
    found = agents.list_messages(open_agents(ctx).engine, agent_id, status=status, limit=limit)
    _listed(as_json, agent_id, found)


# ------------------------------------------------------------------------ dead letters


@dead_letters_app.command("list")
def dead_list(
    ctx: typer.Context,
    agent: str | None = typer.Option(None, "--agent", help="Only this receiver's."),
    limit: int = typer.Option(100, "--limit", help="At most this many."),
    as_json: bool = JsonOption,
) -> None:
    """Dead letters, newest first, with their last error."""
    found = agents.list_dead_letters(open_agents(ctx).engine, receiver_id=agent, limit=limit)
    emit(
        as_json,
        [row_view(m) for m in found],
        lambda: table(
            "dead letters",
            ["message_id", "from", "to", "type", "attempts", "dead since", "last error"],
            [
                (
                    m.message_id,
                    m.sender_id,
                    m.receiver_id,
                    m.message_type,
                    m.attempts,
                    m.dead_lettered_at,
                    m.last_error,
                )
                for m in found
            ],
            empty="no dead letters",
        ),
    )


@dead_letters_app.command("show")
def dead_show(
    ctx: typer.Context, message_id: str = MessageArgument, as_json: bool = JsonOption
) -> None:
    """Show one message (a dead letter's payload and last error), whatever its state."""
    message = agents.get_message(open_agents(ctx).engine, message_id)
    emit_row(as_json, f"message {message.message_id}", row_view(message))


@dead_letters_app.command("redrive")
def redrive(
    ctx: typer.Context,
    message_ids: list[str] | None = typer.Argument(None, help="Dead letters to re-drive."),
    agent: str | None = typer.Option(None, "--agent", help="Every dead letter of this receiver."),
    everything: bool = typer.Option(False, "--all", help="Every dead letter."),
    as_json: bool = JsonOption,
) -> None:
    """Put dead letters back to pending with a fresh attempt budget.

    The ones named, those of --agent, or --all."""
    chosen = [bool(message_ids), agent is not None, everything]
    if sum(chosen) != 1:
        raise ValidationError(
            "name the dead letters to re-drive: MESSAGE_ID..., --agent ID or --all (one of them)",
            hint="List them with `cryptotrading agents dead-letters list`.",
        )
    count = agents.redrive(open_agents(ctx).engine, message_ids or None, receiver_id=agent)
    say(as_json, {"redriven": count}, f"{count} dead letter(s) back to pending")
