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
from django.utils.formats import number_format
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .code_services import customer_clean
from .formats import number
from .shared_cache import shared_get_many, shared_incr

HOUR = 3600

GUESSING_BUDGET = _(
    "Guessing is limited by the answers “unknown code” an hour: %(per_key)s for each API key, "
    "%(per_pool)s for all keys together in one pool; after that, checks and redemptions wait "
    "for the next hour."
)
GUESSING_NOW = _("Now, with the default length and alphabet: %(odds)s")
GUESSING_AT_LIMIT = _("Filled to generation's limit: %(odds)s")
# Below this, a chance is "less than once in a billion": more digits tell nobody anything.
BILLION = 10**9
MILLION = 10**6


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
        count = round(per_hour)
        return ngettext("about %(count)s code an hour", "about %(count)s codes an hour", count) % {
            "count": number(count)
        }
    if per_hour <= 0:
        return gettext("nothing")
    hours = 1 / per_hour
    if hours >= 1000 * 24 * 365:
        return gettext("less than one code in a thousand years")
    if hours >= 2 * 24 * 365:
        count = round(hours / (24 * 365))
        return ngettext(
            "one code every %(count)s year", "one code every %(count)s years", count
        ) % {"count": number(count)}
    if hours >= 2 * 24:
        count = round(hours / 24)
        return ngettext("one code every %(count)s day", "one code every %(count)s days", count) % {
            "count": number(count)
        }
    count = round(hours)
    return ngettext("one code every %(count)s hour", "one code every %(count)s hours", count) % {
        "count": number(count)
    }


def _rounded(value: float) -> int:
    """Return `value` to two significant figures: 9,235 → 9,200; 16,384,000 → 16,000,000."""
    value = round(value)
    digits = len(str(value))
    return round(value, 2 - digits) if digits > 2 else value


def _percent(part: float) -> str:
    """Return a share of at least 1% as a percentage: "12%", "2.5%"."""
    percent = part * 100
    shown = number_format(round(percent, 1), decimal_pos=1) if percent < 10 else round(percent)
    return gettext("%(percent)s%%") % {"percent": str(shown).removesuffix(".0").removesuffix(",0")}


def _chance(part: float) -> str:
    """Return how often something of probability `part` happens, as people say it: "about 12%
    of the time", "once in 9,200 tries", "once in 16 million tries", "less than once in a
    billion tries" (never "6.2e-11%")."""
    if part >= 0.01:
        return gettext("%(percent)s of the time") % {"percent": _percent(part)}
    one_in = _rounded(1 / part) if part > 0 else BILLION
    if one_in >= BILLION:
        return gettext("less than once in a billion tries")
    if one_in >= MILLION:
        millions = round(one_in / MILLION)
        return ngettext(
            "once in %(count)s million tries", "once in %(count)s million tries", millions
        ) % {"count": number(millions)}
    return ngettext("once in %(count)s try", "once in %(count)s tries", one_in) % {
        "count": number(one_in)
    }


def _share(part: float) -> str:
    """Return a share of a whole as people say it: "12%", "one in 9,200", "one in 16 million",
    "less than one in a billion"."""
    if part >= 1:
        return gettext("all")
    if part >= 0.01:
        return _percent(part)
    one_in = _rounded(1 / part) if part > 0 else BILLION
    if one_in >= BILLION:
        return gettext("less than one in a billion")
    if one_in >= MILLION:
        millions = round(one_in / MILLION)
        return ngettext("one in %(count)s million", "one in %(count)s million", millions) % {
            "count": number(millions)
        }
    return ngettext("one in %(count)s", "one in %(count)s", one_in) % {"count": number(one_in)}


def guessing_odds_text(*, space: int, codes: int) -> str:
    """Return the odds of guessing_odds in a sentence, for the generation screen."""
    odds = guessing_odds(space=space, codes=codes)
    # Counted by the codes that exist: "1 of 923,521 possible codes exists".
    text = ngettext(
        "%(codes)s of %(space)s possible codes exists, so a random guess hits %(chance)s. One "
        "key guessing finds %(per_key)s, all keys together %(per_pool)s; in an hour one key "
        "uncovers %(share)s of the pool's codes.",
        "%(codes)s of %(space)s possible codes exist, so a random guess hits %(chance)s. One "
        "key guessing finds %(per_key)s, all keys together %(per_pool)s; in an hour one key "
        "uncovers %(share)s of the pool's codes.",
        codes,
    )
    return text % {
        "codes": number(codes),
        "space": number(space),
        "chance": _chance(odds.fill),
        "share": _share(odds.share_per_key),
        "per_key": _rate_text(odds.found_per_key),
        "per_pool": _rate_text(odds.found_per_pool),
    }


def guessing_budget_text() -> str:
    return GUESSING_BUDGET % {
        "per_key": number(settings.API_FAILED_CHECKS_PER_KEY),
        "per_pool": number(settings.API_FAILED_CHECKS_PER_POOL),
    }


def generation_guessing_notes(*, space: int, codes: int, limit: int) -> list[str]:
    """Return what the generation screen says of guessing: the budget, the odds in the pool as
    it is (`codes` of `space` possible) and at generation's limit (`limit` codes)."""
    lines = [guessing_budget_text()]
    if codes:
        lines.append(GUESSING_NOW % {"odds": guessing_odds_text(space=space, codes=codes)})
    lines.append(GUESSING_AT_LIMIT % {"odds": guessing_odds_text(space=space, codes=limit)})
    return lines
