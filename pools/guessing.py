"""How far a caller can get by guessing codes: the limits on checks, redemptions and marks, and
the odds they leave.

Three counters bound guessing, none of which a caller can multiply by changing the customer id:

- per customer (normalised as the services normalise it, so " c1 " is "c1"): at most
  API_RATE_PER_CUSTOMER checks and redemptions, whichever key asks (not marks: a system that
  hands out printed codes may mark many for one customer id);
- per API key: at most API_FAILED_CHECKS_PER_KEY answers of `unknown_code` an hour, in any pool;
- per pool: at most API_FAILED_CHECKS_PER_POOL answers of `unknown_code` an hour, whichever key
  asks, so that many keys cannot add up either.

Once a key's or a pool's budget of failures is spent, every check, redemption and mark of that
key (or in that pool) is refused with `throttled` until the hour is over: a spent budget cannot
tell a hit from a miss any more. Each budget is counted per clock hour (a fixed window), so
across an hour's edge a key may fail up to twice its budget within sixty minutes.

A legitimate caller fails only on customers' typos, a few in a hundred checks; the defaults let a
key serving thousands of checks an hour through, and leave a guesser a few codes an hour at most
even in a pool filled to generation's limit (see guessing_odds and docs/http-api.md).
"""

import hashlib
import time
from dataclasses import dataclass

from django.conf import settings

from .code_services import customer_clean
from .shared_cache import shared_get_many, shared_incr

HOUR = 3600

GUESSING_BUDGET = (
    "Guessing: an API key may get “unknown code” {per_key:,} times an hour, all keys together "
    "{per_pool:,} times an hour in one pool; then checks and redemptions wait for the next hour."
)
GUESSING_NOW = "With the default length and alphabet, this pool now has {odds}"
GUESSING_AT_LIMIT = "Filled to generation's limit it would have {odds}"
GUESSING_ODDS = (
    "{codes:,} codes out of {space:,} possible ones (a fill of {fill}): one key guessing "
    "finds {per_key} ({share} of the pool's codes an hour), all keys together {per_pool}."
)


class GuessingLimited(Exception):
    def __init__(self, retry_after: float):
        super().__init__(f"retry after {retry_after:.0f} s")
        self.retry_after = retry_after


def rate_setting(setting: str) -> tuple[int, int]:
    """Return (requests, seconds) of a rate written like DRF's: "30/min"."""
    number, _, period = getattr(settings, setting).partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[0]]
    return int(number), seconds


def window_now(seconds: int) -> tuple[int, float]:
    """Return the fixed window of `seconds` now is in, and the seconds left in it."""
    now = time.time()
    return int(now // seconds), seconds - now % seconds


def _failure_keys(caller: str, pool: str) -> tuple[str, str]:
    window, _ = window_now(HOUR)
    return f"guess:key:{caller}:{window}", f"guess:pool:{pool}:{window}"


def guesses_allowed(*, caller: str, pool: str, customer: str | None) -> None:
    """Count one attempt on a code by `caller` (an API key's id) for `customer` in the pool with
    ID `pool`; raise GuessingLimited if a limit is spent. A `customer` of None counts against
    the budgets of failures only (marking codes as issued: one customer may receive many).
    Raises ValidationError for a customer id the services would refuse."""
    if customer is not None:
        customer = customer_clean(customer)
        limit, seconds = rate_setting("API_RATE_PER_CUSTOMER")
        window, left = window_now(seconds)
        ident = customer_ident(customer)
        if shared_incr(f"guess:customer:{ident}:{window}", seconds + 1) > limit:
            raise GuessingLimited(left)
    key_failures, pool_failures = _failure_keys(caller, pool)
    failures = shared_get_many([key_failures, pool_failures])
    if (
        failures.get(key_failures, 0) >= settings.API_FAILED_CHECKS_PER_KEY
        or failures.get(pool_failures, 0) >= settings.API_FAILED_CHECKS_PER_POOL
    ):
        raise GuessingLimited(window_now(HOUR)[1])


def customer_ident(customer: str) -> str:
    """Return what a limit's counter names a customer by: a hash, so that no customer id is
    kept in the shared cache."""
    return hashlib.sha256(customer.encode()).hexdigest()


def guess_failed(*, caller: str, pool: str) -> None:
    """Count an `unknown_code` answer against the caller's and the pool's budgets."""
    for key in _failure_keys(caller, pool):
        shared_incr(key, HOUR + 1)


@dataclass(frozen=True)
class GuessingOdds:
    per_key: int  # failed checks a key may make an hour
    per_pool: int  # failed checks all keys together may make in a pool an hour
    fill: float  # the share of the possible codes that exist
    found_per_key: float  # codes one key finds an hour, expected
    found_per_pool: float  # codes all keys together find an hour, expected
    share_per_key: float  # found_per_key as a share of the pool's codes


def guessing_odds(*, space: int, codes: int) -> GuessingOdds:
    """Return what guessing can find an hour in a pool of `codes` codes out of `space` possible.

    Each guess hits with the probability `fill` = codes / space; a guesser stops at its budget of
    F failures, having made about F / (1 - fill) guesses and found F * fill / (1 - fill) codes.
    """
    per_key, per_pool = settings.API_FAILED_CHECKS_PER_KEY, settings.API_FAILED_CHECKS_PER_POOL
    fill = min(codes / space, 1.0) if space else 1.0
    odds = fill / (1 - fill) if fill < 1 else float("inf")
    found_per_key = per_key * odds
    return GuessingOdds(
        per_key=per_key,
        per_pool=per_pool,
        fill=fill,
        found_per_key=found_per_key,
        found_per_pool=per_pool * odds,
        share_per_key=found_per_key / codes if codes else 0.0,
    )


def _rate_text(per_hour: float) -> str:
    """Return a rate of finds as people say it: "5 codes an hour", "one code every 3 days"."""
    if per_hour >= 1:
        return f"about {per_hour:,.0f} codes an hour" if per_hour >= 1.5 else "about 1 code an hour"
    if per_hour <= 0:
        return "nothing"
    hours = 1 / per_hour
    for unit, size in (("years", 24 * 365), ("days", 24), ("hours", 1)):
        if hours >= 2 * size or unit == "hours":
            return f"one code every {hours / size:,.0f} {unit}"
    raise AssertionError("unreachable")


def _share(part: float) -> str:
    return f"{part:.2%}" if part >= 0.0001 else f"{part * 100:.2g}%"


def guessing_odds_text(*, space: int, codes: int) -> str:
    """Return the odds of guessing_odds in a sentence, for the generation screen."""
    odds = guessing_odds(space=space, codes=codes)
    return GUESSING_ODDS.format(
        codes=codes,
        space=space,
        fill=_share(odds.fill),
        share=_share(odds.share_per_key),
        per_key=_rate_text(odds.found_per_key),
        per_pool=_rate_text(odds.found_per_pool),
    )


def guessing_budget_text() -> str:
    return GUESSING_BUDGET.format(
        per_key=settings.API_FAILED_CHECKS_PER_KEY, per_pool=settings.API_FAILED_CHECKS_PER_POOL
    )


def generation_guessing_notes(*, space: int, codes: int, limit: int) -> list[str]:
    """Return what the generation screen says of guessing: the budget, the odds in the pool as
    it is (`codes` of `space` possible) and at generation's limit (`limit` codes)."""
    lines = [guessing_budget_text()]
    if codes:
        lines.append(GUESSING_NOW.format(odds=guessing_odds_text(space=space, codes=codes)))
    lines.append(GUESSING_AT_LIMIT.format(odds=guessing_odds_text(space=space, codes=limit)))
    return lines
