"""The shared cache (Redis in production) for what the API keeps between requests: active pools
and the counters of rate limits and guessing budgets.

Redis being unreachable degrades, it never breaks a request: reads miss (the caller goes to
PostgreSQL), writes are dropped, and counters are kept in this process's own memory instead. A
failure is logged, and for SHARED_RETRY_SECONDS after it the shared cache is not asked at all,
so that an unreachable Redis costs one connection timeout per interval, not one per request.
With the process's own counters, each of N server processes counts on its own: while Redis is
down a limit lets up to N times its rate through (the price of answering at all).
"""

import logging
import time

from django.core.cache import cache, caches

logger = logging.getLogger(__name__)

SHARED_RETRY_SECONDS = 5
local = caches["local"]

_down_until = 0.0


def _shared():
    """Return the shared cache, or this process's own while the shared one is failing."""
    return cache if time.monotonic() >= _down_until else local


def _failed(error: Exception, action: str) -> None:
    global _down_until
    _down_until = time.monotonic() + SHARED_RETRY_SECONDS
    logger.warning(
        "Shared cache unreachable (%s: %s); using this process's memory for %s s",
        action,
        error,
        SHARED_RETRY_SECONDS,
    )


def shared_get(key: str):
    store = _shared()
    try:
        return store.get(key)
    except Exception as error:  # any backend's connection error; a miss is always safe
        _failed(error, "get")
        return local.get(key)


def shared_get_many(keys: list[str]) -> dict:
    store = _shared()
    try:
        return store.get_many(keys)
    except Exception as error:
        _failed(error, "get_many")
        return local.get_many(keys)


def shared_set(key: str, value, timeout: float) -> None:
    store = _shared()
    try:
        store.set(key, value, timeout)
    except Exception as error:
        _failed(error, "set")
        local.set(key, value, timeout)


def shared_delete(key: str) -> None:
    """Forget `key` in the shared cache and in this process's own."""
    local.delete(key)
    store = _shared()
    if store is local:
        return
    try:
        store.delete(key)
    except Exception as error:
        _failed(error, "delete")


def shared_incr(key: str, timeout: float, by: int = 1) -> int:
    """Add `by` to the counter `key` (created to live `timeout` seconds) and return its value."""
    store = _shared()
    try:
        return _incr(store, key, timeout, by)
    except Exception as error:
        _failed(error, "incr")
        return _incr(local, key, timeout, by)


def _incr(store, key: str, timeout: float, by: int) -> int:
    if store.add(key, by, timeout):
        return by
    try:
        return store.incr(key, by)
    except ValueError:  # expired between add and incr
        store.set(key, by, timeout)
        return by


def shared_reset() -> None:
    """Forget a recorded failure (for tests that take Redis away and bring it back)."""
    global _down_until
    _down_until = 0.0
