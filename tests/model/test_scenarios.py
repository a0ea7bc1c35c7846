"""Each rule of the reference model, played once on purpose through both machines.

The machines draw their sequences at random, so a rule that needs a long or unlikely sequence
(two codes redeemed under one order reference, a retry after its code was withdrawn, the last
moment of a local day) may go unvisited in a run. Here each such sequence is written out: the
machine plays it step by step through the services and through the HTTP API, comparing with
the model after every step as it does for drawn sequences, and the services' machine also
checks that the model answered the last step as the scenario says (so that the scenario
really reaches its rule).
"""

from datetime import timedelta
from typing import NamedTuple

import pytest

from tests.model.test_api_machine import ApiPoolMachine, raised_limits
from tests.model.test_machine import PoolMachine
from tests.model.world import CODE_COUNT, HOUR, LAST, START, day_end

pytestmark = pytest.mark.django_db

MICROSECOND = timedelta(microseconds=1)


class Scenario(NamedTuple):
    rule: str
    steps: list[tuple]  # (rule of the machine, its arguments)
    answer: str | None  # the model's answer to the last step: "ok" or the refusal's reason
    kind: str = "single"  # single, multiple or personal
    codes: dict[int, dict] = {}  # the codes' windows, by number (none by default)
    launched: bool = True
    validity_days: int = 1
    fallback: bool = False  # a fallback pool of the same rules, with two codes


def at(hours: float):
    return START + hours * HOUR


def issue(customer="alice", key="k1"):
    return ("issue", {"customer": customer, "key": key})


def redeem(number=LAST, customer="alice", reference=""):
    return ("redeem", {"number": number, "customer": customer, "reference": reference})


def check(number=LAST, customer="alice"):
    return ("check", {"number": number, "customer": customer})


def mark(number=0, customer="alice"):
    return ("mark_issued", {"number": number, "customer": customer})


def release(key, number=LAST, customer="alice"):
    return ("release", {"number": number, "key": key, "customer": customer})


def wait(step):
    return ("wait", {"step": step})


def wait_hours(hours: int) -> list[tuple]:
    return [wait(HOUR)] * hours


def day_end_passes(past=True):
    return ("wait_for_day_end", {"past": past})


def withdraw(*numbers):
    return ("withdraw", {"numbers": set(numbers)})


def assign(*customers):
    return ("assign", {"customers": list(customers or ["alice"])})


def batch(*customers, key="b1"):
    return ("issue_batch", {"customers": list(customers), "key": key})


GIVE_BACK, SWEEP = ("give_back", {}), ("sweep", {})
FALLBACK_PAUSE = ("fallback_pause_or_resume", {})
PAUSE, RESUME = ("pause", {}), ("resume", {})


def end(stop=False):
    return ("end", {"stop": stop})


# Only code 0 can be handed out at first; the others open two hours after START.
ONLY_CODE_0 = {n: {"issue_start": at(2)} for n in range(1, CODE_COUNT)}
EVERY_CODE = range(CODE_COUNT)

SCENARIOS = [
    # The pool's life
    Scenario("a draft pool hands out nothing", [issue()], "pool_not_active", launched=False),
    Scenario("a draft pool redeems nothing", [redeem(0)], "pool_not_active", launched=False),
    Scenario("a paused pool hands out nothing", [PAUSE, issue()], "pool_paused"),
    Scenario("a paused pool redeems nothing", [issue(), PAUSE, redeem()], "pool_paused"),
    Scenario("a paused pool marks nothing", [PAUSE, mark()], "pool_paused"),
    Scenario("a resumed pool redeems again", [issue(), PAUSE, RESUME, redeem()], "ok"),
    Scenario("an ended pool hands out nothing", [end(), issue()], "pool_ended"),
    Scenario("an ended pool honours what it handed out", [issue(), end(), redeem()], "ok"),
    Scenario("an ended pool refuses what it never handed out", [end(), redeem(0)], "pool_ended"),
    Scenario(
        "an ended pool refuses a multiple-use code to whom it was not issued",
        [issue(), end(), redeem(customer="bob")],
        "pool_ended",
        kind="multiple",
    ),
    Scenario(
        "stopped redemptions refuse what was handed out",
        [issue(), end(True), redeem()],
        "pool_ended",
    ),  # fmt: skip
    # Redeeming
    Scenario("a made-up code is unknown", [redeem(CODE_COUNT)], "unknown_code"),
    Scenario("a made-up code is unknown to a check", [check(CODE_COUNT)], "unknown_code"),
    Scenario(
        "a single-use code is redeemed once", [redeem(0), redeem(0, "bob")], "already_redeemed"
    ),  # fmt: skip
    Scenario("nor twice by one customer", [redeem(0), redeem(0)], "already_redeemed"),
    Scenario("a check does not redeem", [check(0), check(0, "bob"), redeem(0, "bob")], "ok"),
    Scenario(
        "a multiple-use code is redeemed by many, each time counted",
        [redeem(0), redeem(0, "bob"), redeem(0)],
        "ok",
        kind="multiple",
    ),
    Scenario(
        "a multiple-use code is refused once it expired",
        [redeem(0), wait(HOUR), wait(MICROSECOND), redeem(0, "bob")],
        "expired",
        kind="multiple",
        codes={0: {"available_till": at(1)}},
    ),
    # Windows
    Scenario(
        "not yet available", [redeem(0)], "not_yet_available", codes={0: {"available_from": at(2)}}
    ),  # fmt: skip
    Scenario(
        "available from its first moment",
        [*wait_hours(2), redeem(0)],
        "ok",
        codes={0: {"available_from": at(2)}},
    ),  # fmt: skip
    Scenario(
        "good at its Available-till",
        [wait(HOUR), redeem(0)],
        "ok",
        codes={0: {"available_till": at(1)}},
    ),  # fmt: skip
    Scenario(
        "expired a microsecond after its Available-till, the same day",
        [wait(HOUR), wait(MICROSECOND), redeem(0)],
        "expired",
        codes={0: {"available_till": at(1)}},
    ),
    Scenario(
        "good to the last moment of its local day, the day clocks change",
        [day_end_passes(), day_end_passes(past=False), redeem(0)],
        "ok",
        codes={0: {"available_till": day_end(1)}},
    ),
    Scenario(
        "expired from the first moment of the next local day",
        [day_end_passes(), day_end_passes(), redeem(0)],
        "expired",
        codes={0: {"available_till": day_end(1)}},
    ),
    Scenario(
        "a code past its Available-till is not handed out",
        [*wait_hours(2), issue()],
        "no_codes_left",
        codes={n: {"available_till": at(1)} for n in EVERY_CODE},
    ),
    Scenario(
        "nothing is handed out before the issue window opens",
        [*wait_hours(1), issue()],
        "no_codes_left",
        codes={n: {"issue_start": at(2)} for n in EVERY_CODE},
    ),
    Scenario(
        "a code is handed out at its issue window's last moment",
        [wait(HOUR), issue()],
        "ok",
        codes={n: {"issue_end": at(1)} for n in EVERY_CODE},
    ),
    Scenario(
        "nothing is handed out after the issue window closed",
        [wait(HOUR), wait(MICROSECOND), issue()],
        "no_codes_left",
        codes={n: {"issue_end": at(1)} for n in EVERY_CODE},
    ),
    Scenario(
        "the sweep takes codes past their dates out of stock, and only those",
        [wait(HOUR), wait(MICROSECOND), SWEEP, issue()],
        "ok",
        codes={0: {"issue_end": at(1)}, 1: {"available_till": at(1)}, 2: {"issue_end": at(3)}},
    ),
    Scenario(
        "an issued code is not swept",
        [issue(), *wait_hours(3), SWEEP, redeem()],
        "ok",
        codes={n: {"issue_end": at(1)} for n in EVERY_CODE},
    ),
    # Personal codes (issue before redemption) and their validity
    Scenario(
        "personal: a code never issued", [redeem(0)], "not_issued_to_customer", kind="personal"
    ),  # fmt: skip
    Scenario(
        "personal: someone else's code",
        [issue(), redeem(customer="bob")],
        "not_issued_to_customer",
        kind="personal",
    ),  # fmt: skip
    Scenario("personal: one's own code", [issue(), redeem()], "ok", kind="personal"),
    Scenario(
        "personal: valid to the end of its validity",
        [issue(), *wait_hours(24), redeem()],
        "ok",
        kind="personal",
    ),  # fmt: skip
    Scenario(
        "personal: refused a microsecond after its validity",
        [issue(), *wait_hours(24), wait(MICROSECOND), redeem()],
        "issue_validity_over",
        kind="personal",
    ),
    Scenario(
        "personal: validity counted from the issue, not the pool's start",
        [*wait_hours(5), issue(), *wait_hours(24), redeem()],
        "ok",
        kind="personal",
    ),
    Scenario(
        "personal: the owner hears that their code was withdrawn",
        [issue(), withdraw(0), redeem()],
        "withdrawn",
        kind="personal",
        codes=ONLY_CODE_0,
    ),
    Scenario(
        "personal: a code marked with the id padded is the trimmed id's",
        [mark(0, " alice "), check(0), redeem(0)],
        "ok",
        kind="personal",
    ),
    Scenario(
        "personal: a marked code is its customer's",
        [mark(0), redeem(0)],
        "ok",
        kind="personal",
    ),
    # Idempotency keys
    Scenario("a retry under its key", [issue(), issue(), redeem()], "ok"),
    Scenario("a key is one customer's", [issue(), issue("bob")], "idempotency_key_reused"),
    Scenario(
        "a customer's id is trimmed",
        [issue(" alice "), issue("alice"), redeem()],
        "ok",
        kind="personal",
    ),  # fmt: skip
    Scenario(
        "a retry whose code was withdrawn gets a fresh code",
        [issue(), withdraw(0), *wait_hours(2), issue(), redeem()],
        "ok",
        codes=ONLY_CODE_0,
    ),
    Scenario(
        "a retry whose code expired, with nothing left, is refused and frees its key",
        [issue(), wait(HOUR), wait(MICROSECOND), issue(), issue("bob")],
        "no_codes_left",
        codes={n: {"available_till": at(1)} for n in EVERY_CODE},
    ),
    Scenario(
        "a retry of a redeemed code returns it to whom redeemed it",
        [issue(), redeem(), issue()],
        "ok",
        codes=ONLY_CODE_0,
    ),
    # Order references
    Scenario(
        "a redemption repeated under its order reference is the first one",
        [redeem(0, reference="o1"), redeem(0, reference="o1")],
        "ok",
        kind="multiple",
    ),
    Scenario(
        "another customer's order reference",
        [redeem(0, reference="o1"), redeem(0, "bob", reference="o1")],
        "already_redeemed",
        kind="multiple",
    ),
    Scenario(
        "an order reference belongs to its code",
        [redeem(0, reference="o1"), redeem(1, reference="o1")],
        "ok",
    ),
    Scenario(
        "a single-use code's order reference replays after it was redeemed",
        [redeem(0, reference="o1"), redeem(0, reference="o1")],
        "ok",
    ),
    # Giving back
    Scenario(
        "a code given back returns to stock",
        [issue(), GIVE_BACK, issue("bob")],
        "ok",
        codes=ONLY_CODE_0,
    ),  # fmt: skip
    Scenario(
        "a code given back is its caller's no more",
        [issue(), GIVE_BACK, GIVE_BACK],
        None,
        codes=ONLY_CODE_0,
    ),  # fmt: skip
    Scenario(
        "a redeemed code is not given back", [issue(), redeem(), GIVE_BACK], "already_redeemed"
    ),  # fmt: skip
    Scenario("only under its key", [issue(), release("k2")], "unknown_code"),
    Scenario(
        "a multiple-use code given back by one customer stays another's",
        [issue(), issue("bob", "k2"), GIVE_BACK, redeem(customer="bob")],
        "ok",
        kind="multiple",
        codes=ONLY_CODE_0,
    ),
    # Withdrawal
    Scenario("a withdrawn code is refused", [withdraw(0), redeem(0)], "withdrawn"),
    Scenario(
        "a withdrawn code is not handed out",
        [withdraw(0), issue()],
        "no_codes_left",
        codes=ONLY_CODE_0,
    ),  # fmt: skip
    Scenario("a withdrawn code is not marked", [withdraw(0), mark(0)], "withdrawn"),
    Scenario(
        "a redeemed code stays redeemed", [redeem(0), withdraw(0), redeem(0)], "already_redeemed"
    ),  # fmt: skip
    # Marking as issued
    Scenario(
        "a code marked for one customer is not another's",
        [mark(0), mark(0, "bob")],
        "already_issued",
    ),  # fmt: skip
    Scenario("marking again for the same customer", [mark(0), mark(0)], "ok"),
    Scenario("a redeemed code is not marked", [redeem(0), mark(0, "bob")], "already_redeemed"),
    # Batches
    Scenario(
        "a batch gives each customer a code of their own, then stock runs out",
        [batch("alice", "bob", "carol"), issue("dave", ""), issue("erin", "")],
        "no_codes_left",
    ),
    Scenario(
        "a batch repeated under its key gives the same codes",
        [batch("alice", "bob"), batch("alice", "bob"), *(issue(c, "") for c in "cde")],
        "no_codes_left",
    ),
    # Assignments (customer lists, mailings): one code per customer per pool
    Scenario(
        "an assignment gives each customer a code", [assign("alice", " alice ", "bob")], "new"
    ),
    Scenario(
        "an assignment gives a customer the latest code they hold, under any key",
        [issue(), issue(key="k2"), assign()],
        "again",
    ),
    Scenario(
        "an assignment gives nothing to whom redeemed theirs",
        [issue(), redeem(), assign()],
        "redeemed",
    ),
    Scenario(
        "an assignment gives a fresh code for a withdrawn one",
        [issue(), withdraw(0), *wait_hours(2), assign()],
        "new",
        codes=ONLY_CODE_0,
    ),
    Scenario(
        "an assignment gives a fresh code for one someone else redeemed",
        [issue(), redeem(customer="bob"), assign()],
        "new",
    ),
    Scenario(
        "an assignment gives a fresh code for one past its Available-till, if there is one",
        [issue(), wait(HOUR), wait(MICROSECOND), assign()],
        "short",
        codes={n: {"available_till": at(1)} for n in EVERY_CODE},
    ),
    Scenario(
        "an assignment does not give again a code given back",
        [issue(), GIVE_BACK, assign()],
        "new",
        codes=ONLY_CODE_0,
    ),
    Scenario(
        "an assignment repeated gives the same code",
        [assign(), assign(), redeem()],
        "ok",
        kind="personal",
    ),
    # Fallback pools
    Scenario(
        "issuing turns to the fallback when the pool runs dry",
        [*(issue(c, "") for c in "abcd"), issue(), redeem()],
        "ok",
        fallback=True,
    ),
    Scenario(
        "a paused pool does not turn to its fallback",
        [PAUSE, issue()],
        "pool_paused",
        fallback=True,
    ),
    Scenario(
        "a paused fallback is as one run dry",
        [FALLBACK_PAUSE, *(issue(c, "") for c in "abcd"), issue()],
        "no_codes_left",
        fallback=True,
    ),
    Scenario(
        "a retry finds its code in the fallback",
        [*(issue(c, "") for c in "abcd"), issue(), issue(), redeem()],
        "ok",
        fallback=True,
    ),
    Scenario(
        "a retry finds its code in the fallback once the pool has codes again",
        [*(issue(c, "") for c in "abcd"), issue(), ("add_code", {}), issue(), redeem()],
        "ok",
        fallback=True,
    ),
    Scenario(
        "an assignment finds a customer's code in the fallback",
        [*(issue(c, "") for c in "abcd"), issue(), assign()],
        "again",
        fallback=True,
    ),
    Scenario(
        "a batch spills into the fallback, then both run dry",
        [batch(*"abcdef"), issue()],
        "no_codes_left",
        fallback=True,
    ),
    Scenario(
        "an assignment spills into the fallback",
        [assign(*"abcde"), redeem(customer="e")],
        "ok",
        fallback=True,
    ),
]


def play(machine_class, scenario: Scenario):
    """Play the scenario through a machine, comparing with the model after every step."""
    machine = machine_class()
    try:
        windows = [scenario.codes.get(number, {}) for number in range(CODE_COUNT)]
        machine.make(
            kind=scenario.kind,
            validity_days=scenario.validity_days,
            code_windows=[
                dict.fromkeys(("issue_start", "issue_end", "available_from", "available_till"))
                | window
                for window in windows
            ],
            launched=scenario.launched,
            with_fallback=scenario.fallback,
        )
        machine.codes_agree()
        for name, arguments in scenario.steps:
            getattr(machine, name)(**arguments)
            machine.codes_agree()
        return machine
    finally:
        machine.teardown()


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.rule for s in SCENARIOS])
def test_the_services_agree_with_the_model(scenario):
    machine = play(PoolMachine, scenario)
    if scenario.answer is not None:
        assert machine.told is not None, "the last step compared no answer"
        assert (machine.told[1] if machine.told[0] != "ok" else "ok") == scenario.answer


# The API's machine has no assignment: a customer list is the admin's.
OVER_THE_API = [s for s in SCENARIOS if all(hasattr(ApiPoolMachine, name) for name, _ in s.steps)]


@pytest.mark.parametrize("scenario", OVER_THE_API, ids=[s.rule for s in OVER_THE_API])
def test_the_api_agrees_with_the_model(scenario, settings):
    raised_limits(settings)
    play(ApiPoolMachine, scenario)
