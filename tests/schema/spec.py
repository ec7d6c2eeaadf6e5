"""What the spec (``docs/spec/DATABASE_SCHEMA.md``) demands, parsed from its text."""

from __future__ import annotations

import re
from pathlib import Path

#: Spec key fields stored under another name, and why.
FIELD_ALIASES: dict[tuple[str, str], tuple[str, ...]] = {
    # The API key is shown once and never stored: a lookup prefix and a hash are.
    ("users", "api_key"): ("api_key_prefix", "api_key_hash"),
    # "OHLCV" names five columns.
    ("time_series", "OHLCV"): ("open", "high", "low", "close", "volume"),
}

#: The spec's "Performance-Critical Indexes", applied to the tables they concern.
SPEC_INDEXES: list[tuple[str, tuple[str, ...]]] = [
    ("time_series", ("symbol", "timestamp")),
    ("time_series", ("symbol", "frequency", "timestamp")),
    ("market_data", ("symbol", "timestamp")),
    ("factor_data", ("symbol", "factor_name", "timestamp")),
    ("a2a_agents", ("agent_id",)),
    ("agent_contexts", ("agent_id",)),
    ("agent_memory", ("agent_id",)),
    ("a2a_messages", ("sender_id", "receiver_id")),
    ("conversation_sessions", ("user_id",)),
    ("memory_fragments", ("user_id",)),
    ("semantic_memory", ("user_id",)),
    ("portfolio_positions", ("user_id",)),
    ("trading_orders", ("user_id",)),
    ("api_credentials", ("user_id",)),
    ("conversation_sessions", ("session_id",)),
    ("conversation_messages", ("session_id",)),
    ("cache_entries", ("cache_key",)),
    ("cache_entries", ("expires_at",)),
    ("historical_data_cache", ("expires_at",)),
    ("feature_cache", ("expires_at",)),
]

#: The spec's "Data Relationships" (child table, column) -> parent table.
SPEC_RELATIONSHIPS: list[tuple[str, str, str]] = [
    ("conversation_sessions", "user_id", "users"),
    ("conversation_messages", "session_id", "conversation_sessions"),
    ("memory_fragments", "user_id", "users"),
    ("semantic_memory", "user_id", "users"),
    ("portfolio_positions", "user_id", "users"),
    ("trading_orders", "user_id", "users"),
    ("api_credentials", "user_id", "users"),
    ("a2a_connections", "agent1_id", "a2a_agents"),
    ("a2a_connections", "agent2_id", "a2a_agents"),
    ("a2a_messages", "sender_id", "a2a_agents"),
    ("a2a_messages", "receiver_id", "a2a_agents"),
    ("agent_contexts", "agent_id", "a2a_agents"),
    ("agent_memory", "agent_id", "a2a_agents"),
    ("a2a_workflow_executions", "workflow_id", "a2a_workflows"),
    ("trading_decisions", "insight_id", "ai_insights"),
    ("decision_outcomes", "decision_id", "trading_decisions"),
    ("ml_predictions", "model_id", "ml_model_registry"),
]

_ROW = re.compile(r"^\|\s*`(?P<table>\w+)`\s*\|[^|]*\|(?P<fields>[^|]+)\|\s*$")


def spec_tables(spec_file: Path) -> dict[str, list[str]]:
    """Table name -> key fields, from the spec's category tables."""
    tables: dict[str, list[str]] = {}
    for line in spec_file.read_text().splitlines():
        match = _ROW.match(line)
        if match:
            fields = [field.strip() for field in match["fields"].split(",")]
            tables[match["table"]] = [field for field in fields if field]
    return tables


def expected_columns(table: str, field: str) -> tuple[str, ...]:
    return FIELD_ALIASES.get((table, field), (field,))
