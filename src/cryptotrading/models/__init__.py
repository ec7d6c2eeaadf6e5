"""All models of the spec, one module per category, on one metadata.

``CATEGORIES`` maps the spec's 12 categories (plus the schema-version table) to
their tables; each table records in ``table.info`` the schema version that added
it (``since``) and the migration lineage that owns it (``lineage``).
"""

from __future__ import annotations

from sqlalchemy import MetaData, Table

from cryptotrading.db.base import Base
from cryptotrading.models import (
    agents,
    analytics,
    caching,
    code,
    intelligence,
    market,
    memory,
    monitoring,
    quality,
    schema,
    security,
    trading,
    users,
)
from cryptotrading.models._common import APP_LINEAGE, MARKET_LINEAGE
from cryptotrading.models.agents import (
    A2AAgent,
    A2AConnection,
    A2AMessage,
    A2AWorkflow,
    A2AWorkflowExecution,
    AgentContext,
    AgentMemory,
)
from cryptotrading.models.analytics import (
    FactorData,
    FactorDefinition,
    MacroData,
    OnchainData,
    SentimentData,
)
from cryptotrading.models.caching import CacheEntry, FeatureCache, HistoricalDataCache
from cryptotrading.models.code import CodeFile, CodeMetric, Issue
from cryptotrading.models.extensions import (
    EXTENSIONS,
    A2AProcessedKey,
    A2AWorkflowStep,
    A2AWorkflowVersion,
    ChangeLog,
    Extension,
    IngestionBatch,
    MarketChangeLog,
    ReplicaReader,
    ReplicationCursor,
    SeriesChange,
)
from cryptotrading.models.intelligence import (
    AIAnalysis,
    AIInsight,
    DecisionOutcome,
    MLModel,
    MLPrediction,
    TradingDecision,
)
from cryptotrading.models.market import (
    AggregatedMarketData,
    MarketData,
    MarketDataSource,
    TimeSeries,
)
from cryptotrading.models.memory import (
    ConversationHistory,
    ConversationMessage,
    ConversationSession,
    KnowledgeGraphNode,
    MemoryFragment,
    SemanticMemory,
)
from cryptotrading.models.monitoring import ErrorLog, MonitoringEvent, SystemHealth, SystemMetric
from cryptotrading.models.quality import DataIngestionJob, DataQualityMetric
from cryptotrading.models.schema import SchemaVersion
from cryptotrading.models.security import EncryptionKeyMetadata
from cryptotrading.models.trading import PortfolioPosition, TradingOrder
from cryptotrading.models.users import ApiCredential, User

__all__ = [
    "APP_LINEAGE",
    "CATEGORIES",
    "EXTENSIONS",
    "LINEAGES",
    "MARKET_LINEAGE",
    "SCHEMA_VERSIONS",
    "A2AAgent",
    "A2AConnection",
    "A2AMessage",
    "A2AProcessedKey",
    "A2AWorkflow",
    "A2AWorkflowExecution",
    "A2AWorkflowStep",
    "A2AWorkflowVersion",
    "AIAnalysis",
    "AIInsight",
    "AgentContext",
    "AgentMemory",
    "AggregatedMarketData",
    "ApiCredential",
    "Base",
    "CacheEntry",
    "ChangeLog",
    "CodeFile",
    "CodeMetric",
    "ConversationHistory",
    "ConversationMessage",
    "ConversationSession",
    "DataIngestionJob",
    "DataQualityMetric",
    "DecisionOutcome",
    "EncryptionKeyMetadata",
    "ErrorLog",
    "Extension",
    "FactorData",
    "FactorDefinition",
    "FeatureCache",
    "HistoricalDataCache",
    "IngestionBatch",
    "Issue",
    "KnowledgeGraphNode",
    "MLModel",
    "MLPrediction",
    "MacroData",
    "MarketChangeLog",
    "MarketData",
    "MarketDataSource",
    "MemoryFragment",
    "MonitoringEvent",
    "OnchainData",
    "PortfolioPosition",
    "ReplicaReader",
    "ReplicationCursor",
    "SchemaVersion",
    "SemanticMemory",
    "SentimentData",
    "SeriesChange",
    "SystemHealth",
    "SystemMetric",
    "TimeSeries",
    "TradingDecision",
    "TradingOrder",
    "User",
    "lineage_tables",
    "metadata",
]

metadata: MetaData = Base.metadata

#: Migration lineages, one per kind of store; a database may carry several.
LINEAGES: tuple[str, ...] = (APP_LINEAGE, MARKET_LINEAGE)

#: The spec's schema versions, oldest first.
SCHEMA_VERSIONS: tuple[str, ...] = ("1.0.0", "1.5.0", "2.0.0", "2.1.0", "2.2.0", "2.3.0", "2.4.0")


def _module_tables(module: object) -> tuple[str, ...]:
    return tuple(
        sorted(
            value.__tablename__
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, Base)
            and value.__module__ == getattr(module, "__name__", None)
        )
    )


#: The spec's table categories, in the spec's order.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "User & Authentication": _module_tables(users),
    "Market Data": _module_tables(market),
    "AI & Intelligence": _module_tables(intelligence),
    "Agent & Communication": _module_tables(agents),
    "Conversation & Memory": _module_tables(memory),
    "Factor & Analytics": _module_tables(analytics),
    "System Monitoring": _module_tables(monitoring),
    "Caching": _module_tables(caching),
    "Code Management": _module_tables(code),
    "Trading & Portfolio": _module_tables(trading),
    "Data Quality & Ingestion": _module_tables(quality),
    "Security": _module_tables(security),
    "Schema Version": _module_tables(schema),
}


def lineage_tables(lineage: str) -> list[Table]:
    """Tables owned by a migration lineage, in dependency order."""
    return [table for table in metadata.sorted_tables if table.info["lineage"] == lineage]
