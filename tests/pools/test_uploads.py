"""Uploads held to the limits (pools/uploads.py): stored on disk no further than the limit, and
refused by the form with the file's name, its size and the limit."""

import os

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from pools.models import Withdrawal
from pools.uploads import UploadField, UploadHandler
from tests.factories import make_codes, make_pool


def test_the_handler_streams_to_disk_and_stores_no_more_than_the_limit(settings):
    settings.IMPORT_MAX_FILE_SIZE = 1000
    handler = UploadHandler()
    handler.new_file("file", "big.csv", "text/csv", None)
    chunk = b"x" * 300
    for start in range(0, 3000, 300):
        handler.receive_data_chunk(chunk, start)
        assert os.path.getsize(handler.file.temporary_file_path()) <= 1000

    stored = handler.file_complete(3000)

    assert stored.size == 3000  # what was sent, for the form to say
    assert stored.read() == b""
    stored.close()


def test_a_file_within_the_limit_is_stored_whole(settings):
    settings.IMPORT_MAX_FILE_SIZE = 1000
    handler = UploadHandler()
    handler.new_file("file", "codes.csv", "text/csv", None)
    handler.receive_data_chunk(b"Code\n" + b"A" * 995, 0)

    stored = handler.file_complete(1000)

    assert stored.read() == b"Code\n" + b"A" * 995
    stored.close()


def test_the_field_names_the_file_its_size_and_the_limit(settings):
    settings.IMPORT_MAX_FILE_SIZE = 10
    field = UploadField()

    with pytest.raises(Exception) as refused:
        field.clean(SimpleUploadedFile("codes.csv", b"Code\nABCDEFG\n"))

    assert refused.value.messages == [
        "“codes.csv” is 13\xa0bytes; files up to 10\xa0bytes can be uploaded."
    ]
    assert field.clean(SimpleUploadedFile("codes.csv", b"Code\nAB\n")).name == "codes.csv"


def test_a_field_with_its_own_limit_keeps_below_the_upload_limit(settings):
    settings.IMPORT_MAX_FILE_SIZE = 10
    assert UploadField(max_size=lambda: 5).max_size == 5
    assert UploadField(max_size=lambda: 50).max_size == 10


@pytest.mark.django_db
def test_a_withdrawal_list_over_its_limit_is_refused_on_the_form(manager_client, settings):
    settings.WITHDRAW_MAX_LIST_SIZE = 20
    pool = make_pool(launched=True)
    make_codes(pool, ["LEAK1"])
    url = reverse("admin:pools_pool_withdraw", args=[pool.pk])

    response = manager_client.post(
        url,
        {"file": SimpleUploadedFile("leaked.csv", b"code\n" + b"LEAK1\n" * 5), "confirm": "1"},
    )

    assert response.status_code == 200
    assert (
        "“leaked.csv” is 35\xa0bytes; files up to 20\xa0bytes can be uploaded."
        in response.content.decode()
    )
    assert not Withdrawal.objects.exists()


@pytest.mark.django_db
def test_a_withdrawal_list_streamed_to_disk_is_read(manager_client, settings, on_commit_at_once):
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # every file through UploadHandler
    pool = make_pool(launched=True)
    make_codes(pool, ["LEAK1", "LEAK2", "KEEP"])
    url = reverse("admin:pools_pool_withdraw", args=[pool.pk])

    manager_client.post(
        url,
        {
            "file": SimpleUploadedFile("leaked.csv", "\ufeffcode\nLEAK1;LEAK2\n".encode()),
            "confirm": "1",
        },
    )

    assert Withdrawal.objects.get().codes_withdrawn == 2


@pytest.mark.django_db
def test_a_workbook_given_as_a_withdrawal_list_is_refused_as_not_text(manager_client):
    pool = make_pool(launched=True)
    url = reverse("admin:pools_pool_withdraw", args=[pool.pk])

    response = manager_client.post(
        url, {"file": SimpleUploadedFile("leaked.xlsx", b"PK\x03\x04\x00\x00"), "confirm": "1"}
    )

    assert (
        "“leaked.xlsx” is not a text or CSV file: save the codes as text or CSV, one per line, and "
        "upload it again." in response.content.decode()
    )
    assert not Withdrawal.objects.exists()
