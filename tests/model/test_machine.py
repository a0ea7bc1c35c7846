"""The real services and the reference model (rules.py), driven side by side.

A Hypothesis state machine makes a pool (single or multiple use, personal or not) with codes
whose windows open and close around its start, then runs any sequence of the operations staff
and other systems run: launch, pause, resume, end; issue (under idempotency keys or not),
issue a batch, mark as issued, check, redeem (with order references), release, withdraw, the
expiry sweep; and moves the clock across the codes' window edges. After every step it compares
the answer (the code handed out, or the refusal's reason) and, for every code, its status,
holder and redemptions, and the pool's counters, with the model's. What it shares with the
API's machine (the pool, the clock, staff's operations, the comparison) is in world.py.

`make test` runs a bounded number of sequences; `make deep-test` runs many more.
"""

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule, run_state_machine_as_test

from pools import code_services as real
from tests.model import rules as model
from tests.model.world import (
    CODE_NUMBERS,
    CUSTOMERS,
    KEYS,
    MACHINE_SETTINGS,
    ORDER_REFERENCES,
    PoolWorld,
    outcome,
)

pytestmark = pytest.mark.django_db


class PoolMachine(PoolWorld):
    """Other systems' operations through the services, as the shell calls them: told
    everything."""

    def agree(self, real_call, model_call):
        got, expected = outcome(real_call), outcome(model_call)
        self.told = expected
        assert got[0] == expected[0] and (got[0] == "ok" or got[1] == expected[1]), (
            f"real {got}, model {expected}"
        )
        return got

    # Handing codes out

    @rule(customer=CUSTOMERS, key=KEYS)
    def issue(self, customer, key):
        got = outcome(
            lambda: real.code_issue(pool=self.pool, customer=customer, idempotency_key=key).code
        )
        expected = self.told = outcome(
            lambda: model.issue_candidates(self.model, customer, key, self.now)
        )
        assert got[0] == expected[0], f"real {got}, model {expected}"
        if got[0] == "refused":
            assert got[1] == expected[1], f"real {got}, model {expected}"
            return
        assert got[1] in expected[1], f"issued {got[1]}, the model allows {expected[1]}"
        model.issue(self.model, customer, key, self.now, taken=got[1])
        self.handed_out = got[1]

    @precondition(lambda self: self.model.status == model.ACTIVE)
    @rule(customers=st.lists(CUSTOMERS, min_size=1, max_size=4), key=KEYS)
    def issue_batch(self, customers, key):
        batch = real.code_issue_batch(pool=self.pool, customers=customers, idempotency_key=key)
        for item in batch.issued:
            derived = f"{key}:{item.customer}" if key else ""
            allowed = model.issue_candidates(self.model, item.customer, derived, self.now)
            assert item.code.code in allowed, f"{item.customer} got {item.code}, not {allowed}"
            model.issue(self.model, item.customer, derived, self.now, taken=item.code.code)
            self.handed_out = item.code.code
        for customer in batch.short:
            derived = f"{key}:{customer}" if key else ""
            expected = outcome(
                lambda c=customer, d=derived: model.issue_candidates(self.model, c, d, self.now)
            )
            assert expected == ("refused", "no_codes_left"), f"{customer} left short: {expected}"

    @precondition(lambda self: self.model.status == model.ACTIVE)
    @rule(customers=st.lists(CUSTOMERS, min_size=1, max_size=4))
    def assign(self, customers):
        """A customer list's assignment: the core its job runs slice by slice (each slice
        through codes_issue_many once per customer, under the assignment key)."""
        distinct = list(dict.fromkeys(customer.strip() for customer in customers))
        many = real.codes_issue_many(
            pool=self.pool,
            customers=distinct,
            keys={c: real.batch_key(model.ASSIGNMENT_KEY, c) for c in distinct},
            caller="assignment-model",
            once_per_customer=True,
        )
        got = {issued.customer: issued for issued in many.issued}
        # One customer after another: who is given what depends on those before.
        for customer in distinct:
            kind, codes = model.assign(self.model, [customer], self.now)[customer]
            issued = got.get(customer)
            if kind == "again":
                assert issued and issued.again, f"{customer}: {issued}, model {kind}"
                assert issued.code.code in codes, f"{customer} got another code"
            elif kind == "redeemed":
                assert customer in many.redeemed, f"{customer}: not told redeemed"
                assert issued is None, f"{customer} redeemed theirs, and was given {issued.code}"
            elif kind == "new" and codes:
                assert issued and not issued.again, f"{customer}: {issued}, model new"
                assert issued.code.code in codes, f"{customer} got {issued.code}, not {codes}"
                key = real.batch_key(model.ASSIGNMENT_KEY, customer)
                model.issue(self.model, customer, key, self.now, taken=issued.code.code)
                self.handed_out = issued.code.code
            else:
                assert customer in many.short, f"{customer}: {issued}, model short"
            self.told = ("assigned", kind if codes else "short")

    @rule(number=CODE_NUMBERS, customer=CUSTOMERS)
    def mark_issued(self, number, customer):
        text = self.code_text(number)
        pool, pool_model = self.pool_of(text)
        got = self.agree(
            lambda: real.code_mark_issued(code=text, customer=customer, pool=pool),
            lambda: model.mark_issued(pool_model, text, customer, self.now),
        )
        if got[0] == "ok":
            self.handed_out = text

    def release_under(self, text: str, key: str):
        pool, pool_model = self.pool_of(text)
        self.agree(
            lambda: real.code_release(pool=pool, code=text, idempotency_key=key),
            lambda: model.release(pool_model, text, key),
        )

    # Redeeming codes

    @rule(number=CODE_NUMBERS, customer=CUSTOMERS)
    def check(self, number, customer):
        text = self.code_text(number)
        pool, pool_model = self.pool_of(text)
        self.agree(
            lambda: real.code_check(code=text, customer=customer, pool=pool),
            lambda: model.check(pool_model, text, customer, self.now),
        )

    @rule(number=CODE_NUMBERS, customer=CUSTOMERS, reference=ORDER_REFERENCES)
    def redeem(self, number, customer, reference):
        text = self.code_text(number)
        pool, pool_model = self.pool_of(text)
        self.agree(
            lambda: real.code_redeem(
                code=text, customer=customer, pool=pool, order_reference=reference
            ),
            lambda: model.redeem(pool_model, text, customer, reference, self.now),
        )


def test_the_services_agree_with_the_model():
    run_state_machine_as_test(PoolMachine, settings=MACHINE_SETTINGS)
