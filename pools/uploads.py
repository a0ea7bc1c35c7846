"""Uploaded files held to the limits, for every form that takes one: the request streams the file
to a temporary file on disk and stops storing it past IMPORT_MAX_FILE_SIZE (UploadHandler), and
the form's field refuses a file over its limit with a message naming the file and the limit
(UploadField). What a file holds is read by whoever the form hands it to: the request only
looks at it (imports/inspection.py), the worker reads it.

Here, in pools, because pools is the ground floor: its withdrawal list takes a file too, and
imports' forms stand on this one field."""

from django import forms
from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

FILE_TOO_LARGE = _("“{name}” is {size}; files up to {limit} can be uploaded.")


def upload_too_large(*, name: str, size: int, limit: int) -> str | None:
    """Return the refusal of a file of `size` bytes over `limit`, or None when it is within."""
    if size <= limit:
        return None
    return FILE_TOO_LARGE.format(name=name, size=filesizeformat(size), limit=filesizeformat(limit))


class UploadHandler(TemporaryFileUploadHandler):
    """Stream an upload to a temporary file, as Django does past FILE_UPLOAD_MAX_MEMORY_SIZE, but
    store no more than IMPORT_MAX_FILE_SIZE of it: the rest of an over-limit file is read from
    the request and dropped, so a 10 GB upload costs neither memory nor disk. The file handed on
    keeps the size received, for the form to refuse with the file's real size."""

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.limit = settings.IMPORT_MAX_FILE_SIZE
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received <= self.limit:
            self.file.write(raw_data)
        elif self.file.tell():
            # Over the limit: what was stored is dropped, the file is refused by its size.
            self.file.seek(0)
            self.file.truncate()
        return None


class UploadField(forms.FileField):
    """A file field held to the upload limits: a file over `max_size` (by default
    IMPORT_MAX_FILE_SIZE, read when the form is checked) is refused with its name, its size and
    the limit. Every form that takes a file uses this field, so a new one is held too."""

    def __init__(self, *, max_size=None, **kwargs):
        super().__init__(**kwargs)
        self._max_size = max_size

    @property
    def max_size(self) -> int:
        limit = self._max_size
        limit = limit() if callable(limit) else limit
        return (
            settings.IMPORT_MAX_FILE_SIZE
            if limit is None
            else min(limit, settings.IMPORT_MAX_FILE_SIZE)
        )

    def to_python(self, data):
        file = super().to_python(data)
        if file is not None:
            refusal = upload_too_large(name=file.name, size=file.size, limit=self.max_size)
            if refusal:
                raise forms.ValidationError(refusal, code="too_large")
        return file
