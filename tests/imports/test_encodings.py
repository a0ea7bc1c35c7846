import codecs
import io

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from imports import encodings
from imports.code_pages import CANDIDATES
from imports.encodings import (
    ENCODING_NAMES,
    SAMPLE_SIZE,
    EncodingGuess,
    encoding_name,
    guess_encoding,
)

LATIN_CODE_PAGES = {"cp1252", "cp1250", "cp1254", "cp1257", "mac_roman"}


def guess(data: bytes) -> EncodingGuess:
    return guess_encoding(io.BytesIO(data))


def codes_read(data: bytes, codec: str) -> list[str]:
    """Return the first cell of each line, as a reader with `codec` sees it."""
    text = data.decode(codec, errors="replace")
    return [line.split(";")[0] for line in text.splitlines()]


# A byte order mark, UTF-16, ASCII, UTF-8


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("Code\nGRÜN2027\n".encode("utf-8-sig"), "utf-8-sig"),
        ("Code\nGRÜN2027\n".encode("utf-16"), "utf-16"),
        (codecs.BOM_UTF16_BE + "Code\nЁЛКА1\n".encode("utf-16-be"), "utf-16"),
        ("Code\nGRÜN2027\n".encode("utf-16-le"), "utf-16-le"),
        ("Code\nЁЛКА1\n".encode("utf-16-be"), "utf-16-be"),
        # The mark decides even over bytes that are not UTF-8 after it.
        (codecs.BOM_UTF8 + "GRÜN\n".encode("cp1252"), "utf-8-sig"),
    ],
    ids=["utf8-bom", "utf16-bom-le", "utf16-bom-be", "utf16-le", "utf16-be", "bom-wins"],
)
def test_a_byte_order_mark_or_utf16_decides_alone(data, encoding):
    assert guess(data) == EncodingGuess(encoding, (encoding,), b"")


@pytest.mark.parametrize("data", [b"", b"Code\r\nSUMMER2027\r\nAUTUMN2027\r\n"])
def test_an_ascii_file_is_utf8(data):
    assert guess(data) == EncodingGuess("utf-8", ("utf-8",), b"")


def test_a_utf8_file_is_utf8_alone_and_its_sample_is_its_non_ascii_lines():
    data = "Code;Note\nSUMMER1;\nВЕСНА2027;Подарок\nGRÜN2027;\nAUTUMN;\n".encode()
    data += "".join(f"ЁЛКА{n};\n" for n in range(30)).encode()

    result = guess(data)

    assert (result.encoding, result.plausible) == ("utf-8", ("utf-8",))
    assert result.sample.decode().splitlines()[:3] == ["ВЕСНА2027;Подарок", "GRÜN2027;", "ЁЛКА0;"]


def test_a_utf8_file_with_a_stray_windows_1252_byte_is_utf8():
    rows = "".join(f"GRÜN{n};Straße\n" for n in range(200)).encode()
    data = b"Code;Note\n" + rows + "SCHÖN2027;\n".encode("cp1252") + rows

    result = guess(data)

    assert (result.encoding, result.plausible) == ("utf-8", ("utf-8",))


def test_a_small_utf8_file_with_a_stray_byte_is_read_best_as_utf8():
    data = "Code\nGRÜN1\nGRÜN2\nGRÜN3\n".encode() + "SCHÖN\n".encode("cp1252")

    # No reading is plausible (as UTF-8, SCH�N; as Windows-1252, GRÃœN1): the best comes alone.
    assert guess(data).plausible == ("utf-8",)


def test_a_tiny_utf8_file_is_utf8_alone_when_no_other_reading_is_plausible():
    assert guess("Code\nGRÜN2027\n".encode()).plausible == ("utf-8",)


def test_a_tiny_file_that_is_valid_utf8_is_utf8_alone():
    # Windows-1251 "ВЁ1" is the bytes of UTF-8 "¨1": a chance real files do not take, while
    # small UTF-8 files with an accent or two are everywhere.
    assert guess("Code\nВЁ1\n".encode("cp1251")).plausible == ("utf-8",)
    assert guess("Code\nCAFÉ1\n".encode()).plausible == ("utf-8",)


# Single-byte code pages: files as Excel and old tools write them


def test_a_german_excel_file_is_windows_1252_not_cyrillic():
    data = "Code;Notiz\r\nGRÜN2027;\r\nSCHÖN2027;\r\nSTRAßE;Lieferung frei Haus\r\n".encode(
        "cp1252"
    )

    result = guess(data)

    assert result.encoding == "cp1252"
    # Other plausible readings (none today) could only read the same codes.
    assert {tuple(codes_read(data, codec)) for codec in result.plausible} == {
        ("Code", "GRÜN2027", "SCHÖN2027", "STRAßE")
    }


def test_a_russian_excel_file_is_windows_1251_and_no_latin_reading_is_plausible():
    data = "Код;Заметка\r\nВЕСНА2027;Подарок\r\nЁЛКА1;\r\n".encode("cp1251")

    result = guess(data)

    assert result.encoding == "cp1251"
    assert not LATIN_CODE_PAGES & set(result.plausible)


def test_a_russian_file_with_notes_is_not_read_as_koi8_r():
    # KOI8-R reads Подарок as оНДЮПНЙ: the two code pages swap the cases of Cyrillic.
    data = "Code;Note\nВЕСНА2027;Подарок клиенту\nЛЕТО2027;Скидка\n".encode("cp1251")

    assert guess(data).plausible == ("cp1251",)


def test_a_file_of_russian_codes_alone_may_be_koi8_r_but_comes_out_as_windows_1251():
    # Upper-case Cyrillic in one is lower-case Cyrillic in the other: both read as letters.
    data = "Code\nВЕСНА2027\nЛЕТО2027\nЗИМА2027\n".encode("cp1251")

    assert guess(data).plausible == ("cp1251", "koi8_r")


def test_a_russian_code_alone_is_not_read_as_baltic():
    # charset-normalizer scores ØĖŹĄ1 (Windows-1257) as clean as ЁЛКА1.
    assert guess("ЁЛКА1\n".encode("cp1251")).plausible == ("cp1251",)


@pytest.mark.parametrize(
    ("text", "codec"),
    [
        ("Code\nÉTÉ2027\nNOËL\nCRÈME\n", "cp1252"),
        ("Code\nŁÓDŹ1\nżółć\n", "cp1250"),
        ("Код;Заметка\nВЕСНА2027;\nЁЛКА1;\n", "cp866"),
        ("Код;Заметка\nВЕСНА2027;\nЁЛКА1;\n", "koi8_r"),
        ("Code\nΚΑΛΗΜΕΡΑ2027\nΘΑΛΑΣΣΑ1\nΚωδικός\n", "cp1253"),
        ("Code\nİSTANBUL\nŞEKER\n", "cp1254"),
        ("Code\nGRÜN2027\nSCHÖN2027\nCRÈME\n", "mac_roman"),
        ("Code\nŠILTAS\nĄŽUOLAS\nĖGLĖ\n", "cp1257"),
        # Each word is also a Windows-1252 word (Dâvana, íirsis), but of different languages.
        ("Code;Piezīme\nPAVASARIS1;Dāvana klientiem, ķirsis\n", "cp1257"),
        ("Code;Nota\nAÑO2027;¿Descuento para el niño?\n", "cp1252"),
        ("Code;Not\nBAHAR1;Müşteriler için hediye\nKIŞ;Ağaç\n", "cp1254"),
    ],
    ids=[
        "french",
        "polish",
        "dos-866",
        "koi8-r",
        "greek",
        "turkish",
        "mac-roman",
        "lithuanian",
        "latvian",
        "spanish",
        "turkish-notes",
    ],
)
def test_the_code_page_a_file_was_written_in_comes_first(text, codec):
    result = guess(text.encode(codec))

    assert result.encoding == codec


def test_one_odd_word_in_a_long_file_does_not_spoil_its_reading():
    rows = "".join(f"ВЕСНА{n};Подарок клиенту\n" for n in range(300)).encode("cp1251")
    data = rows + "ЁЛКА".encode("cp1251") + b"\x98\n"  # 0x98: no character in Windows-1251

    assert guess(data).plausible == ("cp1251",)


def test_every_byte_counts_not_only_the_head_of_the_file():
    data = b"Code\n" + b"SUMMER2027\n" * 200_000 + "GRÜN2027\n".encode("cp1252")

    result = guess(data)

    assert result.encoding == "cp1252"
    assert result.sample == "GRÜN2027\n".encode("cp1252")


# The sample


def test_the_sample_is_whole_lines_even_across_chunks(monkeypatch):
    monkeypatch.setattr(encodings, "CHUNK_SIZE", 7)
    text = "Code\r\nSUMMER\r\nВЕСНА2027;Подарок\r\nAUTUMN\rЁЛКА1\rWINTER\nЗИМА\n"

    result = guess(text.encode("cp1251"))

    assert result.sample.decode("cp1251") == "ВЕСНА2027;Подарок\r\nЁЛКА1\rЗИМА\n"


def test_the_sample_is_bounded():
    data = "".join(f"ВЕСНА{n};Подарок\n" for n in range(20_000)).encode("cp1251")

    sample = guess(data).sample

    assert SAMPLE_SIZE <= len(sample) < SAMPLE_SIZE + 100
    assert data.startswith(sample)


def test_a_line_too_long_is_sampled_around_its_non_ascii_bytes():
    data = b"A1;" * 100_000 + "ВЕСНА".encode("cp1251") + b";B2" * 100_000  # one line

    result = guess(data)

    assert result.encoding == "cp1251"
    assert "ВЕСНА".encode("cp1251") in result.sample
    assert len(result.sample) < 5000


def test_the_file_is_read_from_the_start_and_left_there():
    file = io.BytesIO("Code\nGRÜN2027\n".encode("cp1252"))
    file.seek(7)

    assert guess_encoding(file).encoding == "cp1252"
    assert file.tell() == 0


# Names


@pytest.mark.parametrize(
    ("codec", "name"),
    [
        ("cp1252", "Windows-1252 (Western European)"),
        ("windows-1251", "Windows-1251 (Cyrillic)"),
        ("KOI8-R", "KOI8-R (Russian)"),
        ("utf_8", "UTF-8"),
        ("latin-1", "latin-1"),
        ("no-such-codec", "no-such-codec"),
    ],
)
def test_encoding_name(codec, name):
    assert encoding_name(codec) == name


def test_every_codec_guessed_has_a_name():
    assert set(CANDIDATES) < set(ENCODING_NAMES)
    for codec in ENCODING_NAMES:
        codecs.lookup(codec)


# Properties

DIGITS = "0123456789"
# Per language: the letters of its codes, notes in real words, and the code pages it comes in.
LANGUAGES = {
    "russian": (
        "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ",
        ["Подарок клиенту", "скидка", "ёлка", "Для сотрудников", "объявление", "Щедрый"],
        ("cp1251", "koi8_r", "cp866", "mac_cyrillic"),
    ),
    "german": (
        "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÜ",
        ["Geschenk für Kunden", "Straße", "schön", "Übergröße", "Rabatt"],
        ("cp1252", "mac_roman"),
    ),
    "french": (
        "ABCDEFGHIJKLMNOPQRSTUVWXYZÀÂÆÇÉÈÊËÎÏÔŒÙÛÜŸ",
        ["Cadeau de Noël", "crème brûlée", "été", "Réduction", "cœur", "à l’hôtel"],
        ("cp1252", "mac_roman"),
    ),
    "spanish": (
        "ABCDEFGHIJKLMNOPQRSTUVWXYZÁÉÍÓÚÑÜ",
        ["Regalo de año nuevo", "niño", "canción", "¿Descuento?", "pingüino"],
        ("cp1252",),
    ),
    "polish": (
        "ABCDEFGHIJKLMNOPRSTUWYZĄĆĘŁŃÓŚŹŻ",
        ["Prezent", "Łódź", "żółć", "zniżka świąteczna", "gęś"],
        ("cp1250",),
    ),
    "czech": (
        "ABCDEFGHIJKLMNOPRSTUVXYZÁČĎÉĚÍŇÓŘŠŤÚŮÝŽ",
        ["Dárek", "sleva", "Příliš žluťoučký kůň", "úterý"],
        ("cp1250",),
    ),
    "turkish": (
        "ABCÇDEFGĞHIİJKLMNOÖPRSŞTUÜVYZ",
        ["Hediye", "İndirim", "şeker", "güzel çocuk", "ılık"],
        ("cp1254",),
    ),
    "lithuanian": (
        "ABCDEFGHIJKLMNOPRSTUVYZĄČĘĖĮŠŲŪŽ",
        ["Dovana", "nuolaida", "ąžuolas", "eglė", "šventės"],
        ("cp1257",),
    ),
    "latvian": (
        "ABCDEFGHIJKLMNOPRSTUVZĀČĒĢĪĶĻŅŠŪŽ",
        ["Dāvana", "atlaide", "ķirsis", "Ziemassvētki", "ūdens"],
        ("cp1257",),
    ),
    "greek": (
        "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩ",
        ["Δώρο", "έκπτωση", "καλημέρα", "θάλασσα", "Κωδικός"],
        ("cp1253",),
    ),
}


@st.composite
def code_files(draw):
    """A file of codes drawn from one language's letters and digits, some with a note in its
    words, and the code page it is saved in."""
    letters, notes, code_pages = LANGUAGES[draw(st.sampled_from(sorted(LANGUAGES)))]
    code = st.text(st.sampled_from(letters + DIGITS), min_size=1, max_size=12)
    rows = draw(st.lists(st.tuples(code, st.none() | st.sampled_from(notes)), max_size=20))
    # Lines as Windows, Unix or an old Mac end them, the last one with or without its break.
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    lines = [f"{c};{n}" if n else c for c, n in [("Code", None), *rows]]
    text = end.join(lines) + (end if draw(st.booleans()) else "")
    return text, draw(st.sampled_from(code_pages))


@given(code_file=code_files())
@example(code_file=("Code\nДЦЬ1\n", "cp1251"))  # ÄÖÜ1 in Windows-1252
@example(code_file=("Code\nÄÖÜ1\n", "cp1252"))
@example(code_file=("Code\nSUMMER1\nЁЛКА1", "cp1251"))  # the last line without its break
@settings(max_examples=400)
def test_a_file_of_codes_reads_right_in_one_of_the_plausible_encodings(code_file):
    text, code_page = code_file
    data = text.encode(code_page)
    try:
        as_utf8 = data.decode()
    except UnicodeDecodeError:
        pass
    else:  # valid UTF-8 is UTF-8 (test_a_tiny_file_that_is_valid_utf8_is_utf8_alone)
        assume(as_utf8.isascii())

    result = guess(data)

    assert result.encoding == result.plausible[0]
    assert text in (data.decode(codec, errors="replace") for codec in result.plausible)
    if len(result.plausible) == 1:
        assert data.decode(result.encoding) == text
    non_ascii_lines = [line for line in text.splitlines(keepends=True) if not line.isascii()]
    assert result.sample.decode(code_page) == "".join(non_ascii_lines)


@given(data=st.binary(max_size=3000))
@example(data=b"\x98\x81\x8d\x8f\x90\x9d\n")
@example(data=b"\xff\xfe")
@settings(max_examples=400)
def test_any_bytes_get_an_encoding(data):
    file = io.BytesIO(data)

    result = guess_encoding(file)

    assert result.plausible and result.encoding == result.plausible[0]
    assert len(set(result.plausible)) == len(result.plausible)
    for codec in result.plausible:
        codecs.lookup(codec)
    assert len(result.sample) <= len(data)
    assert file.tell() == 0


utf8_text = st.text(
    st.characters(codec="utf-8", exclude_characters="\x00\ufeff"), min_size=1, max_size=300
)


@given(text=utf8_text)
@settings(max_examples=300)
def test_utf8_text_is_utf8(text):
    assert guess(text.encode()).encoding == "utf-8"
