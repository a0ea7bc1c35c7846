"""The parser of pasted or uploaded lists of codes to withdraw, tested on generated lists."""

import codecs
import io
from unittest.mock import patch

from hypothesis import given
from hypothesis import strategies as st

from pools.code_services import code_list_parse, code_list_read, withdrawals

# What imports accept as a code: no whitespace, no comma or semicolon.
code = st.text(
    alphabet=st.characters(
        blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters=",;\x85\xa0"
    ),
    min_size=1,
    max_size=30,
).filter(lambda c: c.lower() != "code" and c == "".join(c.split()))
separator = st.sampled_from(["\n", "\r\n", " ", "\t", ",", ";", ", ", " ;\n", "\n\n"])


@given(st.lists(code, max_size=40), st.data())
def test_any_separators_give_back_the_codes_once_in_order(codes, data):
    text = ""
    for item in codes:
        text += item + data.draw(separator)
    text = data.draw(separator) * data.draw(st.booleans()) + text

    assert code_list_parse(text) == list(dict.fromkeys(codes))


@given(st.lists(code, min_size=1, max_size=20), st.sampled_from(["code", "Code", "CODE"]))
def test_a_header_is_not_a_code(codes, header):
    assert code_list_parse("\n".join([header, *codes])) == list(dict.fromkeys(codes))


@given(st.text(max_size=200))
def test_never_an_empty_or_padded_code(text):
    parsed = code_list_parse(text)
    assert all(parsed) and all(c == c.strip() for c in parsed)
    assert len(parsed) == len(set(parsed))


@given(st.lists(code, max_size=40), st.data(), st.integers(min_value=1, max_value=9))
def test_a_file_read_in_chunks_gives_the_codes_the_text_gives(codes, data, chunk):
    text = "".join(item + data.draw(separator) for item in codes)
    if data.draw(st.booleans()):
        text = "Code\n" + text
    encoded = text.encode() if data.draw(st.booleans()) else codecs.BOM_UTF8 + text.encode()

    with patch.object(withdrawals, "_READ_CHUNK", chunk):
        assert code_list_read(io.BytesIO(encoded)) == code_list_parse(text)
