"""The imports and assignments screens in the manager's language: Russian beside English, the
template file's headers, plurals, and the reports a worker writes for the manager who started
the job."""

import csv
import io

import pytest
from django.conf import settings
from django.urls import reverse
from openpyxl import load_workbook

from imports.assignments import assignment_start
from imports.headers import FIELD_BY_KEY, FIELDS, header_key
from imports.models import Assignment, Import, Rejection
from imports.services import (
    import_file_start,
    import_generate_start,
    import_text_start,
    upload_stage,
)
from notifications.languages import remember_language
from pools.models import Pool
from pools.services import pool_pause
from tests.factories import make_codes, make_pool, on_next_stock_change, watching_pool
from tests.imports.files import csv_upload

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("on_commit_at_once")]

RUSSIAN_TEMPLATE_HEADER = [
    "Промокод",
    "Начало выдачи",
    "Конец выдачи",
    "Действует с",
    "Действует до",
]


@pytest.fixture
def russian_client(manager_client):
    manager_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "ru"
    return manager_client


def test_template_downloaded_in_russian_has_russian_headers_the_import_reads(russian_client):
    pool = make_pool()
    response = russian_client.get(reverse("admin:imports_template", args=["csv"]))
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    xlsx = russian_client.get(reverse("admin:imports_template", args=["xlsx"]))
    workbook = load_workbook(io.BytesIO(xlsx.content))

    header = next(csv.reader(io.StringIO(text)))
    assert header == RUSSIAN_TEMPLATE_HEADER
    assert [c.value for c in workbook.worksheets[0][1]] == RUSSIAN_TEMPLATE_HEADER
    assert workbook.sheetnames == ["Коды", "Как заполнять"]
    # Each column is read as the one it names: the template filled in imports.
    assert [FIELD_BY_KEY[header_key(title)] for title in header] == list(FIELDS)
    filled = text.splitlines()[0] + "\r\nRU1,,,,\r\nRU2,,,,\r\n"
    russian_client.post(
        f"{reverse('admin:imports_import_add')}?pool={pool.pk}",
        {"kind": "upload", "upload-file": csv_upload(filled), "action": "import"},
    )
    job = Import.objects.get()
    assert (job.status, job.codes_added) == (Import.Status.COMPLETED, 2)


def test_the_paste_box_button_says_what_it_does(manager_client):
    pool = make_pool()

    page = manager_client.get(f"{reverse('admin:imports_import_add')}?pool={pool.pk}")

    paste_form = page.content.decode().split('id="paste-form"')[1].split("</form>")[0]
    assert 'value="Import codes"' in paste_form
    assert "Upload" not in paste_form


def test_the_add_codes_page_in_russian(russian_client):
    pool = make_pool()

    page = russian_client.get(f"{reverse('admin:imports_import_add')}?pool={pool.pk}")

    text = page.content.decode()
    for words in (
        "Загрузить файл",
        "Проверить файл",
        "Вставить коды",
        'value="Импортировать коды"',
        "Сгенерировать коды",
        "По одному коду в строке",
        "История импорта",
        "Промокод, Начало выдачи, Конец выдачи, Действует с, Действует до",
    ):
        assert words in text, words


def test_the_imports_list_in_russian_names_its_columns_and_statuses(russian_client):
    import_text_start(pool=make_pool(), text="A1\n")
    # Started in English: the list names it in its reader's language.
    import_generate_start(pool=make_pool(), count=5, length=8, alphabet="ABCDEFGH")

    page = russian_client.get(reverse("admin:imports_import_changelist")).content.decode()

    for words in ("Номер задачи", "Источник", "Статус", "Кодов добавлено", "Запустил"):
        assert words in page, words
    assert "Готово" in page and "Вставленный список" in page
    assert "5 сгенерированных кодов" in page
    assert "Task number" not in page and "Completed" not in page
    assert "<h1>Импорты</h1>" in page


def test_the_read_only_lists_are_titled_by_what_they_list(manager_client):
    imports = manager_client.get(reverse("admin:imports_import_changelist")).content.decode()
    assignments = manager_client.get(reverse("admin:imports_assignment_changelist"))

    assert "<h1>Imports</h1>" in imports and "Select import" not in imports
    assert "<h1>Assignments</h1>" in assignments.content.decode()


def test_the_import_report_in_russian(russian_client):
    pool = make_pool()
    job = import_text_start(pool=pool, text="GOOD1\nGOOD1\n")
    job.refresh_from_db()

    page = russian_client.get(reverse("admin:imports_import_change", args=[job.pk]))

    text = page.content.decode()
    assert f"Импорт #{job.pk} — Готово, есть ошибки" in text
    assert "Отчёт об импорте" in text
    assert "= 1 добавлены + 0 уже в пуле + 1 повторов в файле + 0 отклонены + 0 пропущены" in text
    assert "Недобавленные строки" in text
    assert "<td>2</td><td>Промокод</td>" in text  # the duplicate's row and column


def test_a_row_number_in_the_report_has_no_thousands_separator(manager_client):
    pool = make_pool()
    job = import_text_start(pool=pool, text="A1\n")
    Rejection.objects.create(job=job, row_number=1502, column="Code", value="x", reason="Bad.")
    Import.objects.filter(pk=job.pk).update(rows_rejected=1)

    text = manager_client.get(reverse("admin:imports_import_change", args=[job.pk])).content
    text = text.decode()

    assert "<td>1502</td>" in text and "1,502" not in text


def test_the_undo_page_counts_one_code_in_the_singular(manager_client):
    pool = make_pool(launched=True)
    job = import_text_start(pool=pool, text="X1\n")

    page = manager_client.get(reverse("admin:imports_import_undo", args=[job.pk])).content
    page = page.decode()

    assert "1 code will be removed: it was never issued nor redeemed." in page
    assert "Remove 1 code<" in page or 'Remove 1 code"' in page
    assert f"Import #{job.pk} added 1 code to" in page
    assert "1 codes" not in page


def test_an_assignment_writes_its_report_in_the_language_of_its_starter(manager, settings):
    settings.ASSIGN_BATCH_SIZE = 2
    remember_language(manager, "ru")
    pool = watching_pool()
    make_codes(pool, [f"P{i}" for i in range(6)])

    with on_next_stock_change(lambda pool: pool_pause(pool=Pool.objects.get(pk=pool.pk))):
        job = assignment_start(
            pool=pool, file=csv_upload("Customer\nc1\nc2\nc3\nc4\n"), user=manager
        )
    job.refresh_from_db()

    assert job.status == Assignment.Status.FAILED
    assert job.message.startswith("Пул перестал выдавать коды (")
    assert job.message.endswith(
        "клиенты, уже получившие коды, их сохранят. "
        "Запустите выдачу снова, когда пул снова начнёт выдавать коды."
    )


def test_the_report_writes_counts_as_its_reader_does(manager_client, russian_client):
    job = import_text_start(pool=make_pool(), text="A1\n")
    Import.objects.filter(pk=job.pk).update(codes_added=12345, rows_read=12345)
    report = reverse("admin:imports_import_change", args=[job.pk])

    russian = russian_client.get(report).content.decode()

    assert 'data-field="codes_added">12\xa0345</span>' in russian
    assert "12,345" not in russian
    del russian_client.cookies[settings.LANGUAGE_COOKIE_NAME]
    english = manager_client.get(report).content.decode()
    assert 'data-field="codes_added">12,345</span>' in english


def test_an_imports_report_is_written_in_the_language_of_its_starter(manager):
    remember_language(manager, "ru")
    upload = csv_upload("Code,Note,Issue-end\nOLD,x,2020-01-01\nNEW,y,\n")

    job = import_file_start(pool=make_pool(), file=upload, user=manager)
    job.refresh_from_db()

    assert job.message == (
        "Не прочитаны столбцы: Note. 1 код добавлен, хотя его период выдачи или активации уже "
        "закончился: его нельзя ни выдать, ни активировать."
    )


def test_a_file_checked_in_russian(russian_client, manager):
    pool = make_pool()
    upload = upload_stage(pool=pool, file=csv_upload("Code,Issue-end\nX1,\n"), user=manager)

    page = russian_client.get(reverse("admin:imports_upload_preview", args=[upload.pk]))

    text = page.content.decode()
    assert "Проверка файла «codes.csv» перед импортом" in text
    assert "Что сделает импорт" in text
    assert "Строка 1: «Code», «Issue-end»" in text  # the header row's choice
    assert "<td>«Code», «Issue-end»</td>" in text


def test_an_assignments_rejected_rows_give_their_reason_in_the_starters_language(manager):
    remember_language(manager, "ru")
    pool = make_pool(launched=True)
    make_codes(pool, ["P1", "P2"])

    job = assignment_start(pool=pool, file=csv_upload(f"Customer\nc1\n{'x' * 201}\n"), user=manager)
    job.refresh_from_db()

    assert job.rejected_sample[0][2] == (
        "Нет идентификатора клиента, или он длиннее 200 символов, или содержит символ NUL."
    )
