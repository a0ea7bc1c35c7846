"""The product's rules for codes, stated once in plain Python: no database, no Django.

A pool holds codes; staff launch, pause, resume and end it; other systems issue codes to
customers, mark codes as issued, check and redeem them, and give back codes whose message was
never delivered; staff withdraw leaked codes; a sweep takes codes past their dates out of the
stock. This module says what each of those does, from docs/shell-api.md, docs/mailings.md and
DESIGN.md, for a caller that is told everything (the admin, the shell), and what an API key is
not told (`hidden_from_api_key`, from docs/http-api.md). It answers with a reason (the
product's refusal codes, as strings) or with what happened, and it does not say which code an
issue takes when several could be taken: `issue` returns every code allowed.

tests/model/test_machine.py drives the real services and this model side by side and compares
them after every step; tests/model/test_api_machine.py does so through the HTTP API.
docs/testing.md says how to add a rule.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta

AVAILABLE, ISSUED, REDEEMED, EXPIRED, WITHDRAWN = (
    "available",
    "issued",
    "redeemed",
    "expired",
    "withdrawn",
)
DRAFT, ACTIVE, PAUSED, ENDED = "draft", "active", "paused", "ended"


_issue_numbers = itertools.count()


@dataclass
class Issue:
    customer: str
    key: str  # "" without an idempotency key
    number: int = field(default_factory=lambda: next(_issue_numbers))  # issues' order
    released: bool = False  # its key freed: given back, or its code dead and the key retried
    given_back: bool = False  # released (code_release): its caller no longer hears of the code


@dataclass
class Code:
    text: str
    issue_start: datetime | None = None
    issue_end: datetime | None = None
    available_from: datetime | None = None
    available_till: datetime | None = None
    status: str = AVAILABLE
    issued_to: str = ""
    issued_at: datetime | None = None
    times_redeemed: int = 0
    # (customer, order reference) of each redemption.
    redemptions: list[tuple[str, str]] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)

    def issuable(self, now: datetime) -> bool:
        """May be handed out now: in stock, inside its issue window, not past Available-till."""
        return (
            self.status == AVAILABLE
            and (self.issue_start is None or self.issue_start <= now)
            and (self.issue_end is None or self.issue_end >= now)
            and (self.available_till is None or self.available_till >= now)
        )


@dataclass
class Pool:
    multiple_use: bool = False
    issue_first: bool = False  # "check that the code was issued to the customer"
    validity_days: int = 0  # how long an issued code stays valid, when issue_first
    status: str = DRAFT
    redemptions_stopped: bool = False
    codes: dict[str, Code] = field(default_factory=dict)  # in the order they were added
    # Where issuing turns when this pool has no code left to hand out (and it issues).
    fallback: Pool | None = None

    def issue_refusal(self) -> str | None:
        return {DRAFT: "pool_not_active", PAUSED: "pool_paused", ENDED: "pool_ended"}.get(
            self.status
        )

    def redeem_refusal(self) -> str | None:
        if self.status in (DRAFT, PAUSED) or (self.status == ENDED and self.redemptions_stopped):
            return self.issue_refusal()
        return None

    def codes_with_fallback(self) -> list[Code]:
        """The codes an issue of this pool may answer with again: its own and its fallback's."""
        return [*self.codes.values(), *(self.fallback.codes.values() if self.fallback else [])]

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys((AVAILABLE, ISSUED, REDEEMED, EXPIRED, WITHDRAWN), 0)
        for code in self.codes.values():
            counts[code.status] += 1
        return counts


class Refused(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


# The pool's life


def launch(pool: Pool) -> None:
    if pool.status != DRAFT:
        raise Refused("not_draft")
    pool.status = ACTIVE


def pause(pool: Pool) -> None:
    if pool.status != ACTIVE:
        raise Refused("not_active")
    pool.status = PAUSED


def resume(pool: Pool) -> None:
    if pool.status != PAUSED:
        raise Refused("not_paused")
    pool.status = ACTIVE


def end(pool: Pool, *, stop_redemptions: bool) -> None:
    if pool.status not in (ACTIVE, PAUSED):
        raise Refused("not_launched")
    pool.status, pool.redemptions_stopped = ENDED, stop_redemptions


# Handing codes out


def _find(pool: Pool, text: str) -> Code:
    code = pool.codes.get(text.strip())
    if code is None:
        raise Refused("unknown_code")
    return code


def _was_issued(pool: Pool, code: Code, customer: str) -> bool:
    if not pool.multiple_use:
        return code.status in (ISSUED, REDEEMED)
    return any(issue.customer == customer for issue in code.issues)


def _dead_for(pool: Pool, code: Code, customer: str, now: datetime) -> bool:
    """A code never put in front of its customer again: withdrawn, expired (swept or past its
    Available-till), or a single-use code redeemed by someone else."""
    if code.status == REDEEMED:  # what the customer redeemed is still theirs
        return all(customer != who for who, _ in code.redemptions)
    if code.status in (WITHDRAWN, EXPIRED):
        return True
    return code.available_till is not None and code.available_till < now


def issue_candidates(pool: Pool, customer: str, key: str, now: datetime) -> list[str]:
    """Return the codes an issue to `customer` (under `key`) may answer with: one code when it
    is a retry under the key, else every issuable code. Raises Refused.

    A retry whose code is dead frees its key as it looks the key up, whether or not a fresh
    code follows (pools/code_services/holdings.py): a refused retry has freed it too."""
    customer = customer.strip()
    if key:
        for code in pool.codes_with_fallback():
            for issue in code.issues:
                if issue.key == key and not issue.released:
                    if issue.customer != customer:
                        raise Refused("idempotency_key_reused")
                    if not _dead_for(pool, code, customer, now):
                        return [code.text]
                    issue.released = True
    refusal = pool.issue_refusal()
    if refusal:
        raise Refused(refusal)
    candidates = _issuable(pool, now)
    if not candidates:
        raise Refused("no_codes_left")
    return candidates


def _issuable(pool: Pool, now: datetime) -> list[str]:
    """The codes an issue may take: the pool's, else, when it has none left, its fallback's if
    the fallback issues (a fallback paused or ended is as one run dry)."""
    candidates = [code.text for code in pool.codes.values() if code.issuable(now)]
    fallback = pool.fallback
    if not candidates and fallback is not None and fallback.issue_refusal() is None:
        candidates = [code.text for code in fallback.codes.values() if code.issuable(now)]
    return candidates


def owner(pool: Pool, text: str) -> Pool:
    """The pool a code of `pool` or of its fallback belongs to."""
    return pool if text in pool.codes or pool.fallback is None else pool.fallback


def issue(pool: Pool, customer: str, key: str, now: datetime, taken: str) -> None:
    """Record the issue of `taken` (one of what issue_candidates just answered) to `customer`
    under `key`."""
    customer = customer.strip()
    pool = owner(pool, taken)
    code = pool.codes[taken]
    if key and any(old.key == key and not old.released for old in code.issues):
        return  # a retry: the same code, nothing new (issue_candidates freed a dead one's key)
    code.issues.append(Issue(customer=customer, key=key))
    if not pool.multiple_use:
        code.status, code.issued_to, code.issued_at = ISSUED, customer, now


ASSIGNMENT_KEY = "assignment"


def assign(pool: Pool, customers: list[str], now: datetime) -> dict[str, tuple[str, list[str]]]:
    """A customer list's assignment (or a mailing): one code per customer per pool. Return,
    for each distinct customer, ("again", [the code they hold]), ("redeemed", [the code they
    redeemed]: they get nothing), ("new", [the codes they may be given]) or ("short", []).

    What a customer holds (pools/code_services/holdings.py): the code of their latest issue in
    the pool or its fallback, under any key, not given back, if it is still usable (neither
    withdrawn, expired, past its Available-till, nor redeemed by someone else). Failing that, a
    single-use code they redeemed themselves. Issues of dead codes free their keys. The new
    codes are recorded with `issue` under ASSIGNMENT_KEY:<customer>, one customer after
    another."""
    answers = {}
    for customer in dict.fromkeys(c.strip() for c in customers):
        theirs = sorted(
            (
                (code, issue)
                for code in pool.codes_with_fallback()
                for issue in code.issues
                if issue.customer == customer and not issue.given_back
            ),
            key=lambda pair: pair[1].number,
        )
        live = [code for code, _ in theirs if not _dead_for(pool, code, customer, now)]
        redeemed = [code for code in live if code.status == REDEEMED]
        usable = [code for code in live if code.status != REDEEMED]
        if usable:
            answers[customer] = ("again", [usable[-1].text])
        elif redeemed:
            answers[customer] = ("redeemed", [redeemed[-1].text])
        else:
            for _, issue in theirs:
                issue.released = True
            answers[customer] = ("new", _issuable(pool, now))
    return answers


def mark_issued(pool: Pool, text: str, customer: str, now: datetime) -> None:
    """A code handed out elsewhere (printed) recorded as issued to `customer`."""
    customer = customer.strip()
    code = _find(pool, text)
    refusal = pool.issue_refusal()
    if refusal:
        raise Refused(refusal)
    if code.status == WITHDRAWN:
        raise Refused("withdrawn")
    if not pool.multiple_use:
        if code.status == ISSUED and code.issued_to == customer:
            return
        if code.status == REDEEMED:
            raise Refused("already_redeemed")
        if code.status == ISSUED:
            raise Refused("already_issued")
        code.status, code.issued_to, code.issued_at = ISSUED, customer, now
    elif any(issue.customer == customer for issue in code.issues):
        return
    code.issues.append(Issue(customer=customer, key=""))


def release(pool: Pool, text: str, key: str) -> None:
    """Give back a code issued under `key` whose message was never delivered."""
    code = _find(pool, text)
    live = [issue for issue in code.issues if key and issue.key == key and not issue.released]
    if not live:
        raise Refused("unknown_code")
    if code.status == REDEEMED or code.times_redeemed:
        raise Refused("already_redeemed")
    if code.status != ISSUED and not pool.multiple_use:
        raise Refused("not_releasable")
    live[-1].released = live[-1].given_back = True
    if not pool.multiple_use:
        code.status, code.issued_to, code.issued_at = AVAILABLE, "", None


# Redeeming codes


def _held_by(pool: Pool, code: Code, customer: str) -> bool:
    """False if codes are personal (issue before redemption) and this one is not `customer`'s."""
    return not pool.issue_first or (
        code.status in (ISSUED, REDEEMED, WITHDRAWN) and code.issued_to == customer
    )


def redeem_refusal(pool: Pool, code: Code, customer: str, now: datetime) -> str | None:
    """Why `customer` cannot redeem `code` now, told to whom may know it all (admin, shell)."""
    if not _held_by(pool, code, customer):
        return "not_issued_to_customer"  # whose code it is comes before anything else
    refusal = pool.redeem_refusal()
    if refusal:
        return refusal
    if code.status == WITHDRAWN:
        return "withdrawn"
    if pool.status == ENDED and not _was_issued(pool, code, customer):
        return "pool_ended"  # an ended pool honours only the codes it handed out
    if code.available_from is not None and now < code.available_from:
        return "not_yet_available"
    if code.available_till is not None and now > code.available_till:
        return "expired"
    if code.status == REDEEMED:
        return "already_redeemed"
    if pool.issue_first and code.issued_at + timedelta(days=pool.validity_days) < now:
        return "issue_validity_over"
    return None


def check(pool: Pool, text: str, customer: str, now: datetime) -> None:
    refusal = redeem_refusal(pool, _find(pool, text), customer.strip(), now)
    if refusal:
        raise Refused(refusal)


def redeem(pool: Pool, text: str, customer: str, order_reference: str, now: datetime) -> bool:
    """Redeem; return False when it repeats a redemption of this code under the same order
    reference (which returns the first one and changes nothing)."""
    customer, order_reference = customer.strip(), order_reference.strip()
    code = _find(pool, text)
    if order_reference:
        for who, reference in code.redemptions:
            if reference == order_reference:
                if who != customer:
                    raise Refused(redeem_refusal(pool, code, customer, now) or "already_redeemed")
                return False
    refusal = redeem_refusal(pool, code, customer, now)
    if refusal:
        raise Refused(refusal)
    code.redemptions.append((customer, order_reference))
    code.times_redeemed += 1
    if not pool.multiple_use:
        code.status = REDEEMED
    return True


# Taking codes out of use


def withdraw(pool: Pool, texts: list[str]) -> None:
    """Withdraw codes for good; those redeemed (single use) or withdrawn stay as they are."""
    for text in texts:
        code = pool.codes.get(text.strip())
        if code is not None and code.status in (AVAILABLE, ISSUED, EXPIRED):
            code.status = WITHDRAWN


def expire(pool: Pool, now: datetime) -> None:
    """The sweep: codes in stock that can no longer be issued leave it."""
    for code in pool.codes.values():
        past_issue = code.issue_end is not None and code.issue_end < now
        past_use = code.available_till is not None and code.available_till < now
        if code.status == AVAILABLE and (past_issue or past_use):
            code.status = EXPIRED


# What an API key hears (docs/http-api.md, "One answer for 'no such code'")


def hidden_from_api_key(pool: Pool, text: str, customer: str, *, marking: bool = False) -> bool:
    """Return True if an API key asking for `customer` must hear of the code as of one that
    does not exist (unknown_code), whatever this model answers the shell: where codes are
    personal, a code that is not the customer's, unless the key issued or marked it and did
    not give it back. Marking is how a personal code becomes someone's: a code in stock can
    be marked, and the pool's refusals told.

    The model knows one caller: the API's machine makes every issue and mark with one key.
    """
    code = pool.codes.get(text.strip())
    if code is None or _held_by(pool, code, customer.strip()):
        return False
    if marking and code.status == AVAILABLE:
        return False
    return all(issue.given_back for issue in code.issues)
