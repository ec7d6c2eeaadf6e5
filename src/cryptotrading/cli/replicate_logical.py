"""Commands added to a command group by their own module (registered on import)."""

from __future__ import annotations
