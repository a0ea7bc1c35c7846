"""An import's report is written in the language of the manager who started it: each rejected
row's reason names the column as the file does, and row numbers are never grouped."""

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.utils import translation

from imports.batch_commits import BatchCommitter
from imports.engine import import_run
from imports.models import Import
from imports.services import import_file_start
from notifications.languages import remember_language
from tests.factories import make_manager, make_pool
from tests.imports.files import csv_upload

pytestmark = pytest.mark.django_db

# One row of each kind of trouble, in a file headed in Russian.
BAD_ROWS = (
    "Промокод;Действует с;Действует до\n"
    "NEW1;;\n"
    "NEW1;;\n"
    "BAD CODE;;\n"
    "1.23E+15;;\n"
    "NEW2;2026-05-01;2026-04-01\n"
    "NEW3;когда-нибудь;\n"
    ";;\n"
)


def imported_by(language: str, text: str, **options) -> Import:
    manager = make_manager(f"manager_{language}")
    remember_language(manager, language)
    job = import_file_start(pool=make_pool(), file=csv_upload(text), user=manager, **options)
    # The worker runs outside any request, in the default language.
    with translation.override("en"):
        import_run(import_id=job.pk)
    job.refresh_from_db()
    return job


def reasons(job: Import) -> list[tuple]:
    return [(r.row_number, r.column, r.reason) for r in job.rejections.order_by("row_number")]


def test_a_russian_manager_reads_every_reason_in_russian():
    job = imported_by("ru", BAD_ROWS)

    assert job.status == Import.Status.COMPLETED_WITH_ERRORS
    assert reasons(job) == [
        (3, "Промокод", "Такой же код уже есть в строке выше."),
        (
            4,
            "Промокод",
            "В коде на позиции 4 стоит пробел, которого не может быть в коде: удалите его.",
        ),
        (
            5,
            "Промокод",
            "Excel записал этот код в экспоненциальном виде (1.23E+15), и его цифры потеряны. "
            "В Excel задайте столбцу с кодами формат «Текстовый», прежде чем вводить или "
            "вставлять коды, затем сохраните файл и загрузите его снова.",
        ),
        (6, "Действует до", "Дата в столбце «Действует до» раньше даты в столбце «Действует с»."),
        (
            7,
            "Действует с",
            "«когда-нибудь» — не дата: используйте формат ГГГГ-ММ-ДД ЧЧ:ММ, ДД.ММ.ГГГГ ЧЧ:ММ "
            "или ДД/ММ/ГГГГ.",
        ),
    ]


def test_an_english_manager_reads_the_same_file_in_english():
    job = imported_by("en", BAD_ROWS)

    assert reasons(job) == [
        (3, "Промокод", "The same code is in an earlier row."),
        (
            4,
            "Промокод",
            "The code has a space at position 4, which cannot be part of a code: remove it.",
        ),
        (
            5,
            "Промокод",
            "Excel wrote this code in scientific notation (1.23E+15), so its digits are lost. "
            "Format the column of codes as Text in Excel before typing or pasting the codes, "
            "then save and upload again.",
        ),
        (6, "Действует до", "The Действует до date is before the Действует с date."),
        (
            7,
            "Действует с",
            "“когда-нибудь” is not a date: use YYYY-MM-DD HH:MM, DD.MM.YYYY HH:MM or DD/MM/YYYY.",
        ),
    ]


def test_a_file_without_a_header_names_the_template_columns_in_the_managers_language():
    job = imported_by("ru", "A1\nBAD CODE\n")

    assert reasons(job) == [
        (
            2,
            "Промокод",
            "В коде на позиции 4 стоит пробел, которого не может быть в коде: удалите его.",
        )
    ]
    assert job.message == "В файле нет заголовка: каждая строка прочитана как код."


def test_row_numbers_in_reasons_are_not_grouped():
    rows = "".join(f"C{n};;\n" for n in range(2, 1502))
    text = "Code;Issue-start;Issue-end\n" + rows + "C1502;13/01/2026;\nC1503;01/13/2026;\n"

    russian = imported_by("ru", text, date_order="")
    english = imported_by("en", text, date_order="")

    assert reasons(russian) == [
        (
            1503,
            "Issue-start",
            "«01/13/2026» — не дата: в датах этого файла день идёт перед месяцем, как видно по "
            "«13/01/2026» в строке 1502.",
        )
    ]
    assert reasons(english) == [
        (
            1503,
            "Issue-start",
            "“01/13/2026” is not a date: this file's dates are read day-first, as “13/01/2026” "
            "(row 1502) shows.",
        )
    ]


def test_a_refused_file_is_refused_in_the_managers_language():
    job = imported_by("ru", "Name;Note\nA;B\n", inspect=False)

    assert job.status == Import.Status.FAILED
    assert job.message == (
        "В файле «codes.csv» нет столбца с кодами: ни один столбец не называется «Промокод» "
        "(или «Код», «Купон», Code, Promo code). Найденные столбцы: «Name», «Note». "
        "Выберите столбцы на странице загрузки или переименуйте тот, который нужно прочитать. "
        "Исправьте файл и загрузите его снова."
    )


def test_a_commit_in_its_own_thread_writes_in_the_language_it_was_submitted_in():
    seen = []
    with translation.override("ru"), BatchCommitter() as committer:
        # As on PostgreSQL in a worker: the commits run in a thread of their own.
        committer.executor = ThreadPoolExecutor(1)
        committer.submit(lambda: seen.append(translation.get_language()))

    assert seen == ["ru"]
