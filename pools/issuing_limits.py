"""How fast the API may hand codes out: limits on issuing, so that a leaked key cannot drain a
pool in seconds nor one customer collect a pool's codes.

Three counters, in the shared cache (pools/shared_cache.py), each counting codes (a batch counts
each of its customers):

- per API key: at most API_ISSUE_RATE_PER_KEY codes (a rate written like "10000/min");
- per customer per pool: at most API_ISSUE_RATE_PER_CUSTOMER codes, whichever key asks (the
  customer id as the services normalise it);
- per pool per day (UTC): at most the pool's `daily_issue_cap`, which a manager sets on the
  pool page (none: no cap).

Codes a fallback pool gives count against the fallback's cap and the customer's limit there too,
after the fact; a fallback whose cap is reached gives nothing.

Each is reserved before the codes are claimed, so that concurrent requests cannot all pass a
check and overshoot together, and refunded for what was not issued (a retry that got the code it
already had, a customer left short). Windows are fixed, as the guessing budgets' are: across a
window's edge a key may issue up to twice its rate. A retry under an idempotency key whose code
was issued is never refused by a limit: it hands out nothing new. Assignments (the admin) are
not counted: staff start them.

The messages here are the API's only, so they stay English (as every API answer does).
"""

from dataclasses import dataclass, field

from .code_services import keys_held
from .guessing import customer_ident, rate_setting, window_now
from .models import Pool
from .shared_cache import shared_get, shared_incr

DAY = 86400

KEY_LIMITED = "issue_rate_limited"
KEY_LIMITED_MESSAGE = "This API key has issued as many codes as it may for now."
CUSTOMER_LIMITED = "customer_issue_limit"
CUSTOMER_LIMITED_MESSAGE = "This customer has been issued as many codes of the pool as allowed."
CAP_REACHED = "daily_issue_cap"
CAP_REACHED_MESSAGE = "The pool has issued as many codes over the API today as its daily cap."


class IssueLimited(Exception):
    def __init__(self, code: str, message: str, retry_after: float):
        super().__init__(message)
        self.code, self.message, self.retry_after = code, message, retry_after


@dataclass
class Reservation:
    """Codes reserved under the limits for one request; `settle` refunds what was not used."""

    granted: list[str] = field(default_factory=list)  # customers who may be issued a code
    limited: list[str] = field(default_factory=list)  # refused: their own limit or the cap
    # Counter -> (its timeout, the customers counted in it).
    _counted: dict[str, tuple[float, list[str]]] = field(default_factory=dict)

    def settle(self, *, issued: list[str]) -> None:
        """Refund every count reserved but those of customers who got a new code."""
        new = set(issued)
        for counter, (timeout, customers) in self._counted.items():
            unused = sum(1 for customer in customers if customer not in new)
            if unused:
                shared_incr(counter, timeout, -unused)
        self._counted = {}

    def _take(self, counter: str, timeout: float, customers: list[str]) -> int:
        self._counted.setdefault(counter, (timeout, []))[1].extend(customers)
        return shared_incr(counter, timeout, len(customers))

    def _give_back(self, counter: str, customers: list[str]) -> None:
        timeout, counted = self._counted[counter]
        shared_incr(counter, timeout, -len(customers))
        for customer in customers:
            counted.remove(customer)


def _customer_counter(pool, customer: str, window: int) -> str:
    return f"issue:customer:{pool.pk}:{customer_ident(customer)}:{window}"


def _day_counter(pool, day: int) -> str:
    return f"issue:pool-day:{pool.pk}:{day}"


def issue_reserve(*, caller: str, pool, customers: list[str], cap: int | None) -> Reservation:
    """Reserve issuing a code of `pool` to each of `customers` (distinct, normalised) by the
    API key `caller`, under the pool's daily `cap` (None: none).

    Raises IssueLimited if the key's rate would be passed (the whole request), or if nobody can
    be issued a code; otherwise returns the customers granted and those limited (by their own
    limit, or by the cap reached part way through the list: the last ones).
    """
    reservation = Reservation()
    key_limit, key_seconds = rate_setting("API_ISSUE_RATE_PER_KEY")
    window, key_left = window_now(key_seconds)
    counter = f"issue:key:{caller}:{window}"
    if reservation._take(counter, key_seconds + 1, customers) > key_limit:
        reservation.settle(issued=[])
        raise IssueLimited(KEY_LIMITED, KEY_LIMITED_MESSAGE, key_left)

    limit, seconds = rate_setting("API_ISSUE_RATE_PER_CUSTOMER")
    window, retry_after = window_now(seconds)
    customer_counters = {}
    for customer in customers:
        counter = customer_counters[customer] = _customer_counter(pool, customer, window)
        if reservation._take(counter, seconds + 1, [customer]) > limit:
            reservation._give_back(counter, [customer])
            reservation.limited.append(customer)
        else:
            reservation.granted.append(customer)

    reason = (CUSTOMER_LIMITED, CUSTOMER_LIMITED_MESSAGE)
    if cap is not None and reservation.granted:
        day, day_left = window_now(DAY)
        counter = _day_counter(pool, day)
        granted = reservation.granted
        over = min(max(0, reservation._take(counter, DAY + 1, granted) - cap), len(granted))
        if over:
            capped = granted[len(granted) - over :]
            reservation._give_back(counter, capped)
            for customer in capped:
                reservation._give_back(customer_counters[customer], [customer])
            reservation.granted = granted[: len(granted) - over]
            reservation.limited += capped
            reason, retry_after = (CAP_REACHED, CAP_REACHED_MESSAGE), day_left

    if not reservation.granted:
        reservation.settle(issued=[])
        raise IssueLimited(*reason, retry_after)
    return reservation


def pool_issued_today(pool) -> int:
    """Return how many codes of the pool were issued over the API today (UTC), as its daily cap
    counts them (0 when the shared cache has forgotten or never counted)."""
    day, _ = window_now(DAY)
    return shared_get(_day_counter(pool, day)) or 0


def issue_reserve_or_retry(*, caller: str, pool, customers: list[str], key_of) -> Reservation:
    """Reserve issuing to `customers` (issue_reserve); a customer a limit refuses still gets
    what a retry returns, the code they hold under their idempotency key (`key_of(customer)`,
    "" without a key): it hands out nothing new. Raises IssueLimited when nobody can be issued
    a code nor has one to retry."""
    try:
        reservation = issue_reserve(
            caller=caller, pool=pool, customers=customers, cap=pool.daily_issue_cap
        )
    except IssueLimited:
        retries = _retries(pool, customers, key_of)
        if not retries:
            raise
        return Reservation(
            granted=[c for c in customers if c in retries],
            limited=[c for c in customers if c not in retries],
        )
    if reservation.limited:
        retries = _retries(pool, reservation.limited, key_of)
        reservation.granted += [c for c in reservation.limited if c in retries]
        reservation.limited = [c for c in reservation.limited if c not in retries]
    return reservation


def _retries(pool, customers: list[str], key_of) -> set[str]:
    """Return the customers for whom the call is a retry: their key names a code they hold."""
    keys = {key_of(customer): customer for customer in customers}
    keys.pop("", None)
    return {keys[key] for key in keys_held(pool=pool, keys=keys)}


def fallback_for(pool):
    """Return the pool's fallback (or None) and whether issuing may turn to it: not once its
    own daily cap is reached."""
    if not pool.fallback_pool_id:
        return None, False
    fallback = Pool.objects.filter(pk=pool.fallback_pool_id).only("pk", "daily_issue_cap").first()
    return fallback, fallback is not None and not cap_reached(fallback)


def cap_reached(pool) -> bool:
    """Return True if the pool's daily cap is reached (a fallback pool then gives nothing)."""
    return pool.daily_issue_cap is not None and pool_issued_today(pool) >= pool.daily_issue_cap


def fallback_issues_count(pool, customers: list[str]) -> None:
    """Count codes a fallback `pool` gave `customers` (asked of another pool) against the
    fallback's own cap and each customer's limit there. Counted after the fact: a request may
    pass them by its own size, and one whose cap was reached gives nothing (cap_reached)."""
    if pool is None or not customers:
        return
    day, _ = window_now(DAY)
    shared_incr(_day_counter(pool, day), DAY + 1, len(customers))
    _, seconds = rate_setting("API_ISSUE_RATE_PER_CUSTOMER")
    window, _ = window_now(seconds)
    for customer in customers:
        shared_incr(_customer_counter(pool, customer, window), seconds + 1)
