"""Pool IDs suggested from a description, and the message preview, on any input."""

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pools.messages import message_preview, message_preview_parts, parameter_suggestion
from pools.services import (
    SLUG_MAX_LENGTH,
    SLUG_WORDS,
    pool_slug_suggestion,
    slug_from_description,
    template_parameter_from_slug,
)
from tests.factories import make_campaign, make_codes, make_pool

SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")


def test_a_sentence_becomes_a_short_pool_id():
    description = "we created this pool because the CRM team asked for unique codes"
    assert slug_from_description(description) == "crm-team-unique"
    assert slug_from_description("Spring sale 2026") == "spring-sale-2026"
    assert slug_from_description("The") == "the"  # only skipped words: keep them
    assert slug_from_description("…") == ""


@given(st.text())
def test_any_description_gives_a_short_valid_pool_id_or_none(description):
    slug = slug_from_description(description)
    assert len(slug) <= SLUG_MAX_LENGTH
    assert slug == "" or SLUG.match(slug)
    assert len([w for w in slug.split("-") if w]) <= SLUG_WORDS


@pytest.mark.django_db
@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_any_description_gives_a_free_valid_suggestion(description):
    campaign = make_campaign("Any")
    slug = pool_slug_suggestion(campaign=campaign, description=description)
    assert SLUG.match(slug) and len(slug) <= 64
    assert re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", template_parameter_from_slug(slug))


def test_suggestion_ignores_case_and_finds_the_closest():
    known = ["AUTUMN", "SPRING_SALE", "VIP"]
    assert parameter_suggestion("autumn", known) == "AUTUMN"
    assert parameter_suggestion("SPRNG_SALE", known) == "SPRING_SALE"
    assert parameter_suggestion("spring_sal", known) == "SPRING_SALE"
    assert parameter_suggestion("ZZZZZZZ", known) == ""
    assert parameter_suggestion("X", []) == ""


@pytest.mark.django_db
def test_preview_marks_an_unknown_parameter_where_it_stands_and_renders_the_rest():
    pool = make_pool(template_parameter="AUTUMN", launched=True)
    make_codes(pool, ["A1"])

    parts = message_preview_parts(text="Hi {{ promo.autum }}, yours: {{ promo.AUTUMN }}!")

    assert [p.text for p in parts] == ["Hi ", "{{ promo.autum }}", ", yours: ", "A1", "!"]
    unknown = parts[1]
    assert unknown.unknown and unknown.parameter == "autum" and unknown.suggestion == "AUTUMN"
    assert message_preview(text="{{ promo.NOPE }} and {{ promo.AUTUMN }}") == (
        "[unknown parameter NOPE] and A1"
    )


@pytest.mark.django_db
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.one_of(
            st.text(max_size=20),
            st.from_regex(r"\{\{ ?promo\.[A-Za-z_][A-Za-z0-9_]{0,8} ?\}\}", fullmatch=True),
        ),
        max_size=6,
    )
)
def test_any_message_previews_without_crashing_and_keeps_its_text(pieces):
    text = "".join(pieces)
    parts = message_preview_parts(text=text)
    # Nothing known exists: every part is the text as written, in order.
    assert "".join(p.text for p in parts) == text
    message_preview(text=text)
