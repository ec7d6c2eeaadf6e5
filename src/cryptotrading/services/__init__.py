"""Library services for the spec categories 5, 6, 8 and 9 (category 4, agents, is
:mod:`cryptotrading.agents`).

* :mod:`~cryptotrading.services.memory` -- conversation sessions, messages, history,
  memory fragments, semantic memory search and the knowledge graph.
* :mod:`~cryptotrading.services.factors` -- factor definitions and values, the Fear &
  Greed import, on-chain and macro series.
* :mod:`~cryptotrading.services.cache` -- TTL cache, feature cache, memoised
  historical queries.
* :mod:`~cryptotrading.services.code_scan` -- ``ast``-based code metrics and issues.

Every function takes the engine of the app store (``stores.engine(stores.app)``) and
writes in one transaction: bad input raises :class:`~cryptotrading.errors.ValidationError`
and writes nothing.
"""
