"""Each recipient reads an e-mail in their own language (the one they last used the admin in),
dates and numbers written as that language writes them."""

import re

import pytest
from django.core import mail

from imports.models import Import
from notifications.languages import remember_language
from notifications.services import import_notice_send, subscription_add
from pools.code_services import code_issue
from tests.factories import alerting_pool, make_campaign, make_manager, make_pool

pytestmark = pytest.mark.django_db


def test_a_russian_and_an_english_subscriber_each_get_the_alert_in_their_language(
    inbox, django_capture_on_commit_callbacks
):
    ann = make_manager("ann", email="ann@example.com")
    olga = make_manager("olga", email="olga@example.com")
    remember_language(olga, "ru")
    pool = alerting_pool(
        threshold=2_000, codes=2_001, campaign=make_campaign("Осень"), slug="autumn"
    )
    for user in (ann, olga):
        subscription_add(user=user, pool=pool)

    for customer in ("c1", "c2"):
        with django_capture_on_commit_callbacks(execute=True):
            code_issue(pool=pool, customer=customer)

    (english,) = inbox.to("ann@example.com")
    assert english["Subject"].strip() == "Promo codes running low: autumn (Осень)"
    text = english.get_body(("plain",)).get_content()
    assert text.startswith("Hello ann,")
    assert "Codes left to issue: 1,999 (you are alerted below 2,000)." in text
    assert re.search(r"runs dry around \d{4}-\d\d-\d\d \d\d:\d\d\.", text)

    (russian,) = inbox.to("olga@example.com")
    assert russian["Subject"].strip() == "Промокоды заканчиваются: autumn (Осень)"
    text = russian.get_body(("plain",)).get_content()
    html = russian.get_body(("html",)).get_content()
    assert text.startswith("Здравствуйте, olga!")
    assert "В пуле промокодов «autumn» кампании «Осень» заканчиваются коды." in text
    assert (
        "Осталось кодов для выдачи: 1\xa0999 (оповещение приходит, когда их меньше 2\xa0000)."
        in text
    )
    assert "Выдано за последние 24 часа: 2." in text
    assert re.search(r"коды закончатся около \d\d\.\d\d\.\d{4} \d\d:\d\d\.", text)
    assert "Открыть пул" in html and "Open the pool" not in html
    for body in (text, html):
        assert "Hello" not in body and "promo code pool" not in body


def test_an_import_notice_is_written_in_the_language_of_who_started_the_import(settings):
    settings.SITE_URL = "https://promo.example.com"
    olga = make_manager("olga", email="olga@example.com")
    remember_language(olga, "ru")
    job = Import.objects.create(
        pool=make_pool(slug="june"),
        created_by=olga,
        source=Import.Source.TEXT,
        status=Import.Status.COMPLETED,
        codes_added=12_345,
        rows_read=12_345,
    )

    assert import_notice_send(import_id=job.pk) is True

    (message,) = mail.outbox
    assert message.subject.startswith(f"Импорт № {job.pk} в пул june: ")
    assert f"Ваш импорт № {job.pk} в пул «june» завершён: " in message.body
    assert "Добавлено кодов: 12\xa0345; уже были в пуле: 0;" in message.body
    assert "(всего прочитано строк: 12\xa0345)." in message.body
    assert f"Отчёт: https://promo.example.com/admin/imports/import/{job.pk}/change/" in (
        message.body
    )
