"""The named error for what a ccxt exchange call raises (downloads and tickers)."""

from __future__ import annotations

from cryptotrading.errors import CryptotradingError, ValidationError


def exchange_error(
    exchange_id: str, exc: Exception, *, unlisted: str, symbols: str, retry_hint: str
) -> CryptotradingError:
    """A :class:`ValidationError` when the exchange does not list *unlisted* (ccxt's
    ``BadSymbol``; the hint asks to check the *symbols*), else a
    :class:`CryptotradingError` naming the ccxt error, with *retry_hint*."""
    import ccxt  # loaded only once an exchange call has failed

    if isinstance(exc, ccxt.BadSymbol):
        return ValidationError(
            f"{exchange_id} does not list {unlisted}: {exc}",
            hint=f"Check the {symbols} (ccxt notation, e.g. BTC/USDT).",
        )
    return CryptotradingError(f"{exchange_id}: {type(exc).__name__}: {exc}", hint=retry_hint)
