"""What pools tells staff reads in their language (the admin's, or for a job a worker ran, the
language of whoever started it), counts read as plain English, and the HTTP API answers in
English whatever the caller's language."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import translation
from rest_framework.test import APIClient

from notifications.languages import remember_language
from pools import export_services
from pools.code_services import codes_withdraw, withdrawal_file_start, withdrawal_run
from pools.export_services import code_export_run, code_export_start
from pools.jobs import worker_lost
from pools.messages import message_preview
from pools.models import Withdrawal
from pools.selectors import launch_summary, pool_history, pools_with_counts
from tests.factories import make_api_key, make_codes, make_pool, post

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_rate_limits")]


@pytest.fixture
def api():
    _, key = make_api_key(name="crm")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}", HTTP_ACCEPT_LANGUAGE="ru")
    return client


def test_the_api_answers_in_english_to_a_caller_who_asks_for_russian(api):
    pool = make_pool(launched=True)

    refused = post(api, "/api/codes/check", {"code": "NOPE", "customer": "c1", "pool": pool.slug})
    invalid = post(api, "/api/codes/check", {"customer": "c1"})

    assert refused.json()["error"] == {"code": "unknown_code", "message": "There is no such code."}
    assert refused["Content-Language"] == "en"
    assert invalid.json()["error"]["message"] == "Some fields are missing or wrong."
    # Django REST framework's own words, which it would otherwise translate.
    assert invalid.json()["error"]["fields"]["code"] == ["This field is required."]


def test_the_same_refusal_reads_in_russian_on_the_admin(manager_client):
    pool = make_pool(launched=True)
    [code] = make_codes(pool, ["LEAKED"])
    codes_withdraw(pool=pool, codes=["LEAKED"])

    page = manager_client.post(
        reverse("admin:pools_code_mark_issued", args=[code.pk]),
        {"customer": "ann"},
        follow=True,
        HTTP_ACCEPT_LANGUAGE="ru",
    )

    assert "Код отозван." in page.content.decode()


def test_the_pool_history_counts_codes_in_plain_english():
    pool = make_pool(launched=True)
    make_codes(pool, ["ONE", "TWO", "THREE"])
    codes_withdraw(pool=pool, codes=["ONE"])
    codes_withdraw(pool=pool, codes=["TWO", "ONE", "MISSING"])

    whats = [item["what"] for item in pool_history(pool)]

    assert whats[:2] == ["Withdrew 1 of the 3 codes asked for", "Withdrew 1 code"]
    with translation.override("ru"):
        whats = [item["what"] for item in pool_history(pool)]
    assert whats[:2] == ["Отозвано 1 из 3 запрошенных кодов", "Отозван 1 код"]


def test_a_job_that_lost_its_worker_once_says_once():
    assert worker_lost(Withdrawal(attempts=1)) == (
        "The worker stopped during this job 1 time; what it finished is kept. "
        "Run it again to go on."
    )


def test_a_report_a_worker_writes_is_in_the_language_of_whoever_started_the_job(manager):
    remember_language(manager, "ru")
    pool = make_pool(launched=True)
    empty = SimpleUploadedFile("empty.csv", b"code\n", content_type="text/csv")
    withdrawal = withdrawal_file_start(pool=pool, file=empty, user=manager)

    failed = withdrawal_run(withdrawal_id=withdrawal.pk)

    assert failed.message == (
        "В файле «empty.csv» нет кодов, поэтому ничего не отозвано. "
        "Проверьте файл и загрузите его снова."
    )
    assert worker_lost(Withdrawal(attempts=3, created_by=manager)) == (
        "Обработчик останавливался во время этой задачи 3 раза; уже сделанное сохранено. "
        "Чтобы продолжить, запустите её снова."
    )


def test_the_launch_confirmation_reads_in_russian_with_russian_numbers():
    pool = make_pool(notify_below=1500, notify_below_enabled=True)
    make_codes(pool, [f"C{n}" for n in range(1200)])

    with translation.override("ru"):
        summary = launch_summary(pools_with_counts().get(pk=pool.pk))

    assert "Остаток кодов (можно выдать сейчас): 1\xa0200 из 1\xa0200." in summary["facts"]
    assert "Оповещение «мало кодов»: когда останется меньше 1\xa0500." in summary["facts"]
    assert summary["warnings"][0] == (
        "Порог оповещения (1\xa0500) выше остатка (1\xa0200): подписчики сразу получат письмо "
        "о том, что кодов мало."
    )


def test_the_message_preview_marks_an_unknown_parameter_in_russian():
    with translation.override("ru"):
        preview = message_preview(text="Ваш код: {{ promo.NOPE }}")

    assert preview == "Ваш код: [неизвестный параметр NOPE]"


def test_a_failed_export_tells_whoever_asked_for_it_in_their_language(manager, monkeypatch):
    remember_language(manager, "ru")
    pool = make_pool(launched=True)
    make_codes(pool, ["E1"])
    export = code_export_start(filters={"pool": pool.pk}, file_format="csv", user=manager)

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(export_services, "_write_csv", broken)
    code_export_run(export_id=export.pk)

    export.refresh_from_db()
    assert export.message == ("Выгрузка не удалась: disk full. Запустите её снова со списка кодов.")
