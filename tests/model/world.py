"""What the reference model's state machines share: the pool they make, the clock, staff's
operations, and the comparison after every step.

A machine made from `PoolWorld` makes a pool (single or multiple use, personal or not) with
codes whose windows open and close around START, and runs what staff run through the
services (launch, pause, resume, end; withdraw; the expiry sweep) and the clock moving across
the codes' window edges. After every step it compares, for every code, its status, holder and
redemptions, and the pool's counters, with the model's (rules.py). Each sequence runs in a
transaction rolled back after it.

The machines add the operations of other systems (issue, batch, mark, check, redeem, release):
tests/model/test_machine.py through the services, as the shell calls them;
tests/model/test_api_machine.py through the HTTP API.
"""

import os
from datetime import UTC, datetime, time, timedelta
from unittest import mock
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import transaction
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pools import code_services as real
from pools import services
from pools.counters import pool_counts_add
from pools.models import Code as RealCode
from pools.models import Redemption
from pools.refusals import CodeRefused
from tests.factories import counts_by_status, make_pool
from tests.model import rules as model

# The machines run in a time zone that changes its clocks while they run: Berlin moves from
# CET to CEST at 01:00 UTC on 29 March 2026, 13 hours after START.
ZONE = "Europe/Berlin"
START = datetime(2026, 3, 28, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)
CUSTOMERS = st.sampled_from(["alice", "bob", "carol", " alice "])
KEYS = st.sampled_from(["", "k1", "k2"])
ORDER_REFERENCES = st.sampled_from(["", "o1", "o2"])
CODE_COUNT = 4
FALLBACK_CODE_COUNT = 2
# A code an operation names: one of the pool's by number, a made-up one (CODE_COUNT), one of
# the fallback pool's (after that, when there is one), or the code last handed out (issued or
# marked), so that sequences come back to it: give it back, then check it, say.
LAST = "last handed out"
CODE_NUMBERS = st.integers(0, CODE_COUNT + FALLBACK_CODE_COUNT) | st.just(LAST)
EXAMPLES = int(os.environ.get("MODEL_EXAMPLES", "40"))

# `make test` runs EXAMPLES sequences of up to 30 steps; `make deep-test` many more.
MACHINE_SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def day_end(days: int) -> datetime:
    """Return the last moment of the local day `days` after START's, as an import file's
    Available-till date is read (imports/validation.py): the end of that day in the project's
    time zone."""
    day = START.astimezone(ZoneInfo(ZONE)).date() + timedelta(days=days)
    return datetime.combine(day, time.max, tzinfo=ZoneInfo(ZONE)).astimezone(UTC)


# A window edge: none, a whole number of hours from START (so that the clock, moving by hours
# and minutes, lands on edges, just before and just after them), or a local day's end (which
# the clock reaches by wait_for_day_end), on either side of the change to summer time.
edge = (
    st.none()
    | st.integers(-6, 30).map(lambda hours: START + hours * HOUR)
    | st.integers(-1, 2).map(day_end)
)


@st.composite
def windows(draw) -> dict:
    issue_start, issue_end = draw(edge), draw(edge)
    if issue_start and issue_end and issue_end < issue_start:
        issue_start, issue_end = issue_end, issue_start
    available_from, available_till = draw(edge), draw(edge)
    if available_from and available_till and available_till < available_from:
        available_from, available_till = available_till, available_from
    return {
        "issue_start": issue_start,
        "issue_end": issue_end,
        "available_from": available_from,
        "available_till": available_till,
    }


def outcome(call):
    """Run `call`; return ("ok", its result) or ("refused", the reason)."""
    try:
        return "ok", call()
    except CodeRefused as refused:
        return "refused", refused.reason.value
    except model.Refused as refused:
        return "refused", refused.reason
    except ValidationError as error:
        return "refused", "invalid: " + "; ".join(error.messages)


class PoolWorld(RuleBasedStateMachine):
    """A pool, its codes and the clock, with staff's operations; no test of its own."""

    def __init__(self):
        super().__init__()
        self.now = START
        self.told = None  # the model's outcome of the last call compared (scenarios read it)
        self.clock = mock.patch("django.utils.timezone.now", lambda: self.now)
        self.clock.start()
        # Each sequence in a transaction rolled back after it, so that the next starts from an
        # empty database (the sweep reads every pool).
        self.sequence = transaction.atomic()
        self.sequence.__enter__()

    def teardown(self):
        transaction.set_rollback(True)
        self.sequence.__exit__(None, None, None)
        self.clock.stop()

    @initialize(
        kind=st.sampled_from(["single", "multiple", "personal"]),
        validity_days=st.integers(1, 2),
        code_windows=st.lists(windows(), min_size=CODE_COUNT, max_size=CODE_COUNT),
        launched=st.booleans(),
        with_fallback=st.booleans(),
    )
    def make(self, kind, validity_days, code_windows, launched, with_fallback=False):
        rules = {"allow_multiple_use": kind == "multiple"}
        if kind == "personal":
            rules |= {"require_issue_before_redeem": True, "issued_validity_days": validity_days}
        self.pool = make_pool(**rules)
        self.model = self.pool_model(kind, validity_days)
        self.codes_add(self.pool, self.model, code_windows)
        self.fallback = self.fallback_model = None
        if with_fallback:
            # A fallback of the same rules, launched, its codes without dates.
            self.fallback = make_pool(self.pool.campaign, launched=True, **rules)
            self.fallback_model = self.pool_model(kind, validity_days)
            self.fallback_model.status = model.ACTIVE
            self.codes_add(self.fallback, self.fallback_model, [{}] * FALLBACK_CODE_COUNT)
            self.pool.fallback_pool = self.fallback
            self.pool.save(update_fields=["fallback_pool"])
            self.model.fallback = self.fallback_model
        self.texts = list(self.model.codes)
        self.fallback_texts = list(self.fallback_model.codes) if with_fallback else []
        self.handed_out = self.texts[0]  # the code last issued or marked (LAST)
        if launched:
            self.launch()

    @staticmethod
    def pool_model(kind, validity_days) -> model.Pool:
        return model.Pool(
            multiple_use=kind == "multiple",
            issue_first=kind == "personal",
            validity_days=validity_days if kind == "personal" else 0,
        )

    @staticmethod
    def codes_add(pool, pool_model, code_windows, first=0):
        for number, fields in enumerate(code_windows, start=first):
            text = f"P{pool.pk}-{number}"
            RealCode.objects.create(pool=pool, code=text, **fields)
            pool_model.codes[text] = model.Code(text=text, **fields)
        pool_counts_add(pool_id=pool.pk, available=len(code_windows))

    def code_text(self, number: int | str) -> str:
        if number == LAST:
            return self.handed_out
        if number < CODE_COUNT:
            return self.texts[number]
        if 0 <= number - CODE_COUNT - 1 < len(self.fallback_texts):
            return self.fallback_texts[number - CODE_COUNT - 1]
        return f"MADE-UP-{number}"

    def pool_of(self, text: str):
        """Return the pool a code is asked of (its own: the fallback's codes are redeemed,
        marked and given back in the fallback) and the model's of it."""
        if self.fallback is not None and text in self.fallback_model.codes:
            return self.fallback, self.fallback_model
        return self.pool, self.model

    def both_refuse_or_not(self, real_call, model_call):
        """For the pool's life: the services word their refusals for staff."""
        got, expected = outcome(real_call), outcome(model_call)
        assert got[0] == expected[0], f"real {got}, model {expected}"

    # The pool's life

    @rule()
    def launch(self):
        self.both_refuse_or_not(
            lambda: services.pool_launch(pool=self.fresh_pool()),
            lambda: model.launch(self.model),
        )

    @rule()
    def pause(self):
        self.both_refuse_or_not(
            lambda: services.pool_pause(pool=self.fresh_pool()),
            lambda: model.pause(self.model),
        )

    @rule()
    def resume(self):
        self.both_refuse_or_not(
            lambda: services.pool_resume(pool=self.fresh_pool()),
            lambda: model.resume(self.model),
        )

    @rule(stop=st.booleans())
    def end(self, stop):
        self.both_refuse_or_not(
            lambda: services.pool_end(pool=self.fresh_pool(), stop_redemptions=stop),
            lambda: model.end(self.model, stop_redemptions=stop),
        )

    def fresh_pool(self):
        self.pool.refresh_from_db()
        return self.pool

    @precondition(lambda self: getattr(self, "fallback", None) is not None)
    @rule()
    def fallback_pause_or_resume(self):
        # A fallback that does not issue is as one run dry.
        self.fallback.refresh_from_db()
        if self.fallback_model.status == model.ACTIVE:
            services.pool_pause(pool=self.fallback)
            model.pause(self.fallback_model)
        else:
            services.pool_resume(pool=self.fallback)
            model.resume(self.fallback_model)

    # Giving codes back (each machine says how: release_under)

    @rule(number=CODE_NUMBERS, key=KEYS, customer=CUSTOMERS)
    def release(self, number, key, customer):
        # A batch's issue is given back under "<batch key>:<customer>".
        text = self.code_text(number)
        for named in {key, f"{key}:{customer.strip()}" if key else ""}:
            self.release_under(text, named)

    def release_under(self, text: str, key: str):
        """Give `text` back under the idempotency `key`, and compare with the model."""
        raise NotImplementedError

    def key_of_last(self) -> str:
        """Return the key the code last handed out was issued under and still holds, or ""."""
        issues = self.pool_of(self.handed_out)[1].codes[self.handed_out].issues
        return next((i.key for i in reversed(issues) if i.key and not i.released), "")

    @precondition(lambda self: hasattr(self, "model") and self.key_of_last())
    @rule()
    def give_back(self):
        # What a mailer does when its message bounced: it gives back the code it was handed,
        # under the key it asked with. Drawn keys and codes rarely meet so.
        self.release_under(self.handed_out, self.key_of_last())

    @precondition(lambda self: hasattr(self, "model") and len(self.model.codes) < CODE_COUNT + 2)
    @rule()
    def add_code(self):
        # More codes come to a pool that ran dry (an import, a refill): a retry of an issue that
        # fell back must still find its code in the fallback. Named by LAST once handed out.
        self.codes_add(self.pool, self.model, [{}], first=len(self.model.codes))

    # Taking codes out of use, and time

    @rule(numbers=st.sets(st.integers(0, CODE_COUNT + FALLBACK_CODE_COUNT), min_size=1, max_size=3))
    def withdraw(self, numbers):
        texts = [self.code_text(number) for number in sorted(numbers)]
        for pool, pool_model in [(self.pool, self.model), (self.fallback, self.fallback_model)]:
            theirs = [text for text in texts if pool and self.pool_of(text)[0] is pool]
            if theirs:
                real.codes_withdraw(pool=pool, codes=theirs)
                model.withdraw(pool_model, theirs)

    @rule()
    def sweep(self):
        real.codes_expire(at=self.now)
        model.expire(self.model, self.now)
        if self.fallback_model is not None:
            model.expire(self.fallback_model, self.now)

    @rule(step=st.sampled_from([timedelta(microseconds=1), timedelta(minutes=59), HOUR, 5 * HOUR]))
    def wait(self, step):
        self.now += step

    @rule(past=st.booleans())
    def wait_for_day_end(self, past):
        """Move the clock to the last moment of the local day (or the first of the next)."""
        days = 0
        while day_end(days) < self.now:
            days += 1
        self.now = day_end(days) + (timedelta(microseconds=1) if past else timedelta(0))

    # What must always agree

    @invariant()
    def codes_agree(self):
        if not hasattr(self, "pool"):
            return
        self.pool_agrees(self.pool, self.model)
        if self.fallback is not None:
            self.pool_agrees(self.fallback, self.fallback_model)

    @staticmethod
    def pool_agrees(pool, pool_model):
        for code in RealCode.objects.filter(pool=pool):
            expected = pool_model.codes[code.code]
            assert (code.status, code.issued_to or "", code.times_redeemed) == (
                expected.status,
                expected.issued_to,
                expected.times_redeemed,
            ), f"{code.code}: real {code.status} {code.issued_to!r}, model {expected}"
            redeemed_by = sorted(
                Redemption.objects.filter(code=code).values_list("customer", "order_reference")
            )
            assert redeemed_by == sorted(expected.redemptions), code.code
        counts = counts_by_status(pool)
        counts.pop("total")
        assert counts == pool_model.counts(), f"counters {counts}, model {pool_model.counts()}"
