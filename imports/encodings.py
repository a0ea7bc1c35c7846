"""Tell the encoding of an uploaded CSV file, and say when more than one reading of it makes
sense rather than pick one in silence.

A byte order mark decides alone, and so do NUL bytes on every other byte (UTF-16 without one).
A file that decodes as UTF-8, or nearly (a few stray bytes), is UTF-8. Any other file was saved
in a single-byte code page: each candidate reading of its non-ASCII lines is judged word by word,
and a word that mixes scripts, holds a symbol, has letters that no language of that code page
writes, or has its cases swapped makes the reading implausible. The plausible readings are ranked
by the languages they need, their odd words and how common their letters are. charset-normalizer's
mess measure alone cannot tell code pages apart on a short list of codes (Russian "ЁЛКА1" read as
Baltic "ØĖŹĄ1" scores 0.0, as the right reading does), so it only breaks the last ties here.
"""

import codecs
import io
import re
from dataclasses import dataclass
from typing import BinaryIO

from django.utils.translation import gettext_lazy as _

from .code_pages import CANDIDATES, rank_readings

CHUNK_SIZE = 1024 * 1024
# The non-ASCII lines judged and handed back: thousands of rows, every letter a file uses.
SAMPLE_SIZE = 64 * 1024
# A line longer than this (a file without line breaks) is cut around its non-ASCII bytes.
_LINE_LIMIT = 4 * 1024
# readers.py tells UTF-16 without a BOM on this much of the head of a file.
_UTF16_HEAD = 64 * 1024
# A single-byte file can decode as UTF-8 by chance only while it is tiny: cp1251 "ВЁ" is the
# valid UTF-8 "¨". With this many characters beyond ASCII, all valid, a file is UTF-8.
_SURELY_UTF8 = 20

ENCODING_NAMES = {
    "utf-8": "UTF-8",
    "utf-8-sig": _("UTF-8 (with a byte order mark)"),
    "utf-16": "UTF-16",
    "utf-16-le": _("UTF-16 little-endian"),
    "utf-16-be": _("UTF-16 big-endian"),
    "cp1251": _("Windows-1251 (Cyrillic)"),
    "cp1252": _("Windows-1252 (Western European)"),
    "cp1254": _("Windows-1254 (Turkish)"),
    "cp1250": _("Windows-1250 (Central European)"),
    "cp1257": _("Windows-1257 (Baltic)"),
    "cp1253": _("Windows-1253 (Greek)"),
    "koi8_r": _("KOI8-R (Russian)"),
    "cp866": _("DOS 866 (Cyrillic)"),
    "mac_cyrillic": _("Mac OS Cyrillic"),
    "mac_roman": _("Mac OS Roman (Western European)"),
}
_NAMES_BY_CODEC = {codecs.lookup(codec).name: name for codec, name in ENCODING_NAMES.items()}


@dataclass(frozen=True)
class EncodingGuess:
    """How to read a file: `encoding`, first of the readings that look plausible (`plausible`,
    best first; one when there is no doubt).

    `sample` holds whole lines of the file that have non-ASCII bytes, in file order (up to
    SAMPLE_SIZE and a line): the bytes the guess was made on, for the caller to decode each
    plausible way and compare. Empty when a byte order mark or UTF-16 decided, or for ASCII.
    """

    encoding: str
    plausible: tuple[str, ...]
    sample: bytes


def encoding_name(codec: str) -> str:
    """Return the name a manager knows an encoding by ("Windows-1252 (Western European)")."""
    try:
        return str(_NAMES_BY_CODEC.get(codecs.lookup(codec).name, codec))
    except LookupError:
        return codec


def guess_encoding(file: BinaryIO) -> EncodingGuess:
    """Return the encoding of a CSV file, read from the start in chunks; leave it at position 0.

    Every byte is looked at until the answer cannot change: one Windows-1252 "Ü" on row 90,000
    of a file otherwise ASCII says as much as one on row 2. A 100 MB file takes about 0.1 s if
    it is ASCII, 0.5 s in Windows-1251, 1 s in UTF-8.
    """
    file.seek(0, io.SEEK_END)
    size = file.tell()
    file.seek(0)
    try:
        head = file.read(CHUNK_SIZE)
        decided = _decided_by_head(head[:_UTF16_HEAD])
        if decided:
            return EncodingGuess(decided, (decided,), b"")
        scan = _scan(head, file, size=size)
    finally:
        file.seek(0)
    if not scan.sample:
        return EncodingGuess("utf-8", ("utf-8",), b"")
    if not scan.invalid:
        # Valid UTF-8 is UTF-8. A single-byte file is valid UTF-8 only by a chance that real
        # text does not make (every accented capital followed by a symbol: Windows-1251 "ВЁ1" is
        # UTF-8 "¨1"), while small UTF-8 files with a letter or two beyond ASCII are common:
        # asking about them would put every such file in doubt.
        return EncodingGuess("utf-8", ("utf-8",), scan.sample)
    # Stray bytes in a UTF-8 file (a row pasted from another file) spoil those rows only: the
    # reader makes them U+FFFD, which validation rejects. A single-byte file forms valid UTF-8
    # sequences only by chance (a capital followed by a symbol), never four times as many as
    # the bytes that do not.
    if scan.valid >= _SURELY_UTF8 and scan.valid >= 4 * scan.invalid:
        return EncodingGuess("utf-8", ("utf-8",), scan.sample)
    # Else a single-byte code page; or UTF-8 with many bad bytes, if that reads best.
    ranked = rank_readings(scan.sample, ("utf-8", *CANDIDATES) if scan.valid else CANDIDATES)
    plausible = tuple(reading.codec for reading in ranked if reading.plausible)
    # None plausible: the best reading alone, and the caller rejects the rows it garbles.
    plausible = plausible or (ranked[0].codec,)
    return EncodingGuess(plausible[0], plausible, scan.sample)


def _decided_by_head(head: bytes) -> str | None:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    # readers.py's rule: NUL on most odd (even) bytes is ASCII text in UTF-16 LE (BE).
    if head[1::2].count(0) > len(head) // 4:
        return "utf-16-le"
    if head[0::2].count(0) > len(head) // 4:
        return "utf-16-be"
    return None


# Reading the file


@dataclass
class _Scan:
    sample: bytes
    valid: int  # characters beyond ASCII that decode as UTF-8
    invalid: int  # byte sequences that do not


_NON_ASCII = re.compile(rb"[\x80-\xff]")
_NON_ASCII_BYTES = bytes(range(0x80, 0x100))
_REPLACEMENT = "\ufffd"
_REPLACEMENT_UTF8 = _REPLACEMENT.encode()


class _Utf8Tally:
    """Decode a file as UTF-8 chunk by chunk, counting what decodes and what does not.

    A chunk all ASCII is skipped (bytes.isascii runs at memory speed); the rest is decoded in C
    with errors replaced, one U+FFFD for each invalid sequence. Every ASCII byte decodes to one
    character, so the characters beyond ASCII are the text's length less the chunk's ASCII bytes.
    """

    def __init__(self):
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.valid = self.invalid = 0

    def feed(self, chunk: bytes, *, final: bool = False) -> None:
        if chunk.isascii() and not self.decoder.getstate()[0]:
            return
        text = self.decoder.decode(chunk, final=final)
        ascii_bytes = len(chunk.translate(None, _NON_ASCII_BYTES))
        # A genuine U+FFFD cut by the end of a chunk counts as invalid: one character at most.
        invalid = text.count(_REPLACEMENT) - chunk.count(_REPLACEMENT_UTF8)
        self.invalid += invalid
        self.valid += len(text) - ascii_bytes - invalid

    def hopeless(self, *, remaining: int) -> bool:
        """Return True if the file cannot be mostly UTF-8 even if the remaining bytes are all
        valid characters of two bytes."""
        return self.invalid * 100 >= self.valid + self.invalid + remaining // 2


def _scan(head: bytes, file: BinaryIO, *, size: int) -> _Scan:
    """Decode the whole file as UTF-8, and collect its first lines with non-ASCII bytes.

    Stop early once the sample is full and so many bytes failed to decode that the file cannot
    be mostly UTF-8 whatever follows: a 500 MB Windows-1251 file is told in its first megabytes
    (decoding it all would take 8 s).
    """
    tally = _Utf8Tally()
    lines: list[bytes] = []
    sampled = 0
    carry = b""  # the start of a line that goes on in the next chunk
    chunk = head
    done = 0
    while chunk:
        following = file.read(CHUNK_SIZE)
        last = not following
        tally.feed(chunk, final=last)
        done += len(chunk)
        if sampled >= SAMPLE_SIZE and tally.hopeless(remaining=size - done):
            break
        if sampled < SAMPLE_SIZE and (carry or not chunk.isascii()):
            buffer = carry + chunk
            end = len(buffer) if last else max(buffer.rfind(b"\n"), buffer.rfind(b"\r")) + 1
            if not end and len(buffer) > SAMPLE_SIZE:
                end = len(buffer)  # no line break in sight: take what there is
            for line in _non_ascii_lines(buffer[:end]):
                lines.append(line)
                sampled += len(line)
                if sampled >= SAMPLE_SIZE:
                    break
            carry = buffer[end:]
        chunk = following
    return _Scan(b"".join(lines), tally.valid, tally.invalid)


def _non_ascii_lines(data: bytes):
    """Yield the lines of `data` (with their line break) that hold a non-ASCII byte."""
    position = 0
    while match := _NON_ASCII.search(data, position):
        at = match.start()
        start = max(data.rfind(b"\n", 0, at), data.rfind(b"\r", 0, at)) + 1
        ends = [end for end in (data.find(b"\n", at), data.find(b"\r", at)) if end >= 0]
        end = min(ends) + 1 if ends else len(data)
        if data[end - 1 : end + 1] == b"\r\n":
            end += 1
        if end - start > _LINE_LIMIT:
            start, end = _window(data, at, start, end)
        yield data[start:end]
        position = end


def _window(data: bytes, at: int, start: int, end: int) -> tuple[int, int]:
    """Return the bounds of a piece of an over-long line around position `at`, cut next to
    ASCII bytes so that no character of a multi-byte encoding is split."""
    half = _LINE_LIMIT // 2
    low, high = max(start, at - half), min(end, at + half)
    while low > start and data[low] >= 0x80:
        low -= 1
    while high < end and data[high - 1] >= 0x80:
        high += 1
    return low, high
