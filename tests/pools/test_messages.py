import pytest
from django.core.exceptions import ValidationError

from pools.messages import message_parameters, message_preview, message_render
from pools.models import CodeIssue
from tests.factories import make_codes, make_pool

pytestmark = pytest.mark.django_db


def test_message_gets_a_code_of_each_named_pool_once_per_message_id():
    spring = make_pool(template_parameter="SPRING", launched=True)
    vip = make_pool(template_parameter="VIP", launched=True)
    make_codes(spring, ["S1", "S2"])
    make_codes(vip, ["V1"])
    text = "Hi! {{ promo.SPRING }} and {{promo.VIP}}; again {{ promo.SPRING }}."

    first = message_render(text=text, customer="ann", message_id="m-1")
    retry = message_render(text=text, customer="ann", message_id="m-1")

    assert first == retry == "Hi! S1 and V1; again S1."
    assert CodeIssue.objects.count() == 2
    assert message_render(text="{{ promo.SPRING }}", customer="bob", message_id="m-2") == "S2"


def test_unknown_parameter_is_refused_and_nothing_issued():
    pool = make_pool(template_parameter="REAL", launched=True)
    make_codes(pool, ["R1"])

    with pytest.raises(ValidationError, match="NOPE"):
        message_render(text="{{ promo.REAL }} {{ promo.NOPE }}", customer="c", message_id="m")

    assert not CodeIssue.objects.exists()


def test_preview_issues_nothing():
    pool = make_pool(template_parameter="PREVIEWED", launched=True)
    make_codes(pool, ["P1"])

    assert message_preview(text="Code: {{ promo.PREVIEWED }}") == "Code: P1"
    assert not CodeIssue.objects.exists()
    assert message_parameters("{{ promo.A }} {{promo.B}} {{ promo.A }}") == ["A", "B"]
