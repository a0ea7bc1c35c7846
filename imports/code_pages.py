"""Judge the readings of a file's non-ASCII lines in single-byte code pages: which languages each
code page writes, and what in a word no language writes (see encodings.py, which asks)."""

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import cache

from charset_normalizer.md import mess_ratio

# The code pages a CSV file comes in when it is not Unicode: Excel on Windows saves "CSV" in the
# system's ANSI code page, Excel on the Mac in the Mac one, old DOS tools in 866; ISO 8859-1 is
# Windows-1252 but for 0x80-0x9F. In order of preference between equally plausible readings:
# Cyrillic first (the home market), then Western European. Turkish comes before Central
# European: Windows-1254 differs from Windows-1252 in six letters only (Ğ İ Ş ğ ı ş), and the
# letters a Polish or Czech file cannot do without (ł ą ż ě ř ů) are symbols or non-Turkish
# letters in Windows-1254, so a file that reads as Turkish there seldom is Central European.
CANDIDATES = (
    "cp1251",
    "cp1252",
    "cp1254",
    "cp1250",
    "cp1257",
    "cp1253",
    "koi8_r",
    "cp866",
    "mac_cyrillic",
    "mac_roman",
)


# The languages written in each code page


@dataclass(frozen=True)
class _Language:
    letters: str  # beyond ASCII, lower case; all its letters for Cyrillic and Greek
    script: str = "LATIN"
    # Written in this code page by its speakers' computers, not merely writable in it.
    major: bool = True
    alphabet: frozenset[str] = field(init=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "alphabet", frozenset(self.letters))


def _minor(language: _Language) -> _Language:
    return _Language(language.letters, language.script, major=False)


_GERMAN = _Language("äöüß")
_FRENCH = _Language("àâæçéèêëîïôœùûüÿ")
_SPANISH = _Language("áéíóúñü")
_PORTUGUESE = _Language("áâãàçéêíóôõú")
_ITALIAN = _Language("àèéìíîòóù")
_CATALAN = _Language("àçèéíïòóú")
_DUTCH = _Language("áéíóúàèëïöü")
_DANISH_NORWEGIAN = _Language("æøåéèêóòô")
_SWEDISH_FINNISH = _Language("åäöéšž")
# Minor: a file with Ý Þ (Windows-1252) is more often Turkish İ Ş (Windows-1254) than Icelandic.
_ICELANDIC_FAROESE = _Language("áðéíóúýþæöø", major=False)
_POLISH = _Language("ąćęłńóśźż")
_CZECH = _Language("áčďéěíňóřšťúůýž")
_SLOVAK = _Language("áäčďéíĺľňóôŕšťúýž")
_HUNGARIAN = _Language("áéíóöőúüű")
_SOUTH_SLAVIC = _Language("čćđšž")
_ROMANIAN = _Language("ăâîşţ")
_ALBANIAN = _Language("çë")
_TURKISH = _Language("çğıöşüâîûİ")  # İ: its lower case is two characters
_LITHUANIAN = _Language("ąčęėįšųūž")
_LATVIAN = _Language("āčēģīķļņšūž")
_ESTONIAN = _Language("äõöüšž")
_WESTERN = (
    _GERMAN,
    _FRENCH,
    _SPANISH,
    _PORTUGUESE,
    _ITALIAN,
    _CATALAN,
    _DUTCH,
    _DANISH_NORWEGIAN,
    _SWEDISH_FINNISH,
    _ICELANDIC_FAROESE,
)
_CENTRAL = (_POLISH, _CZECH, _SLOVAK, _HUNGARIAN, _SOUTH_SLAVIC, _ROMANIAN, _ALBANIAN)
_BALTIC = (_LITHUANIAN, _LATVIAN, _ESTONIAN)
_CYRILLIC = tuple(
    _Language(letters, "CYRILLIC")
    for letters in (
        "абвгдеёжзийклмнопрстуфхцчшщъыьэюя",  # Russian
        "абвгґдеєжзиіїйклмнопрстуфхцчшщьюя",  # Ukrainian
        "абвгдеёжзійклмнопрстуўфхцчшыьэюя",  # Belarusian
        "абвгдежзийклмнопрстуфхцчшщъьюя",  # Bulgarian
        "абвгдђежзијклљмнњопрстћуфхцчџш",  # Serbian
        "абвгдѓежзѕијклљмнњопрстќуфхцчџш",  # Macedonian
    )
)
_GREEK = _Language("αβγδεζηθικλμνξοπρσςτυφχψωάέήίόύώϊϋΐΰ", "GREEK")
# German can be written in Windows-1254, -1250 and -1257 too, and Polish in -1257, but a German
# or Polish PC writes Windows-1252 or -1250: a reading that needs them there is worth less.
_LANGUAGES = {
    "utf-8": (*_WESTERN, _TURKISH, *_CENTRAL, *_BALTIC, *_CYRILLIC, _GREEK),
    "cp1251": _CYRILLIC,
    "cp1252": _WESTERN,
    "cp1254": (_TURKISH, _minor(_GERMAN)),
    "cp1250": (*_CENTRAL, _minor(_GERMAN)),
    "cp1257": (*_BALTIC, _minor(_POLISH), _minor(_GERMAN)),
    "cp1253": (_GREEK,),
    "koi8_r": _CYRILLIC,
    "cp866": _CYRILLIC,
    "mac_cyrillic": _CYRILLIC,
    "mac_roman": _WESTERN,
}
# The most frequent letters of Russian and of Greek, two thirds of the letters of a text: the
# right reading of a Cyrillic or Greek word has most of its letters among them; a reading in
# the wrong Cyrillic or Greek code page has letters shuffled to rare ones (ВЕСНА, беямю).
_COMMON = {"CYRILLIC": frozenset("оеаинтсрвлкм"), "GREEK": frozenset("αοιετσςνηυρπκ")}


# Judging a reading

# What a word may hold beside letters and digits: between two of them, l’été, l·l, 20°C.
_INSIDE = frozenset("’'·°")
# Next to a letter: quotes, brackets and dashes, and these. Next to a number: currency, these.
_BESIDE_A_LETTER = frozenset("¿¡…•") | _INSIDE
_QUOTES_BRACKETS_DASHES = frozenset(("Pi", "Pf", "Ps", "Pe", "Pd"))
_BESIDE_A_NUMBER = frozenset("°%‰ªº¹²³№±×µ")

# A word: a run of characters between white space, ASCII punctuation and control characters.
_WORD = re.compile(r"[^\x00-\x2f\x3a-\x40\x5b-\x60\x7b-\x7f\s]+")
_SPLIT_WORD = re.compile(r"(?<=\w)[\u00a0\u2000-\u200a\u202f\u205f\u3000](?=\w)")
_LETTER, _DIGIT, _SYMBOL, _JUNK = 1, 2, 3, 4
_CODE_PAGE_SCRIPTS = frozenset(("LATIN", "CYRILLIC", "GREEK"))


@cache
def _character(char: str) -> tuple[int, str]:
    """Return the kind of a character (letter, digit, symbol, or junk that no text holds: box
    drawing, private use, control, U+FFFD) and for a letter its script."""
    if char.isascii():
        return (_LETTER, "LATIN") if char.isalpha() else (_DIGIT, "")
    category = unicodedata.category(char)
    if char == "\ufffd" or category in ("Cc", "Co", "Cn", "Cs") or "─" <= char <= "▟":
        return _JUNK, ""
    if category.startswith("N"):
        return (_DIGIT, "") if category == "Nd" else (_SYMBOL, "")
    # ª, µ and the ligature ﬂ are letters with a <super> or <compat> decomposition: symbols.
    if category.startswith("L") and not unicodedata.decomposition(char).startswith("<"):
        script = unicodedata.name(char, "").partition(" ")[0]
        return _LETTER, "CJK" if script in ("HIRAGANA", "KATAKANA") else script
    return _SYMBOL, ""


def _lower(char: str) -> str:
    lower = char.lower()
    return lower if len(lower) == 1 else char


def _symbol_fits(char: str, before: int, after: int) -> bool:
    """Return True if a symbol may stand between the nearest non-symbols before and after it
    in its word (0: none)."""
    alphanumeric = (_LETTER, _DIGIT)
    if before in alphanumeric and after in alphanumeric:
        return char in _INSIDE
    if _LETTER in (before, after):
        return char in _BESIDE_A_LETTER or unicodedata.category(char) in _QUOTES_BRACKETS_DASHES
    if _DIGIT in (before, after):
        return char in _BESIDE_A_NUMBER or unicodedata.category(char) == "Sc"
    return True


@dataclass(frozen=True)
class _Word:
    bad: bool  # written so in no language of the code page: the reading is wrong
    odd: bool  # possible, but seldom so in a real file
    letters: int  # beyond ASCII, in one of the scripts of the code pages
    common: int  # of them, common in the languages of the code page
    languages: frozenset[_Language]  # those that write its letters


def _judge_word(word: str, languages: tuple[_Language, ...]) -> _Word:
    """Judge a word that holds a non-ASCII character, as one code page reads it."""
    kinds = [_character(char) for char in word]
    bad = any(kind == _JUNK for kind, _ in kinds)
    # Each symbol is judged by the nearest letter or digit on either side: ¬≈—Ќ is as bad as ¬Ќ.
    before = 0
    for index, (kind, _) in enumerate(kinds):
        if kind == _SYMBOL and not bad:
            after = next((k for k, _ in kinds[index + 1 :] if k != _SYMBOL), 0)
            bad = not _symbol_fits(word[index], before, after)
        elif kind != _SYMBOL:
            before = kind
    letters = [char for char, (kind, _) in zip(word, kinds, strict=True) if kind == _LETTER]
    scripts = {script for kind, script in kinds if kind == _LETTER} & _CODE_PAGE_SCRIPTS
    foreign = [  # the letters beyond ASCII that a code page can hold
        _lower(char)
        for char, (kind, script) in zip(word, kinds, strict=True)
        if kind == _LETTER and script in _CODE_PAGE_SCRIPTS and not char.isascii()
    ]
    if len(scripts) > 1:
        bad = True  # GRЬN2027: Latin and Cyrillic in one word
    script = next(iter(scripts), "")
    needed = set(foreign)
    fits = [
        language
        for language in languages
        if language.script == script and needed <= language.alphabet
    ]
    if foreign and not fits:
        bad = True  # ÂÅÑÍÀ: Â Å Ñ are letters of three languages
    cased = "".join(char for char in letters if char.lower() != char.upper() and char != "ß")
    if len(cased) >= 3 and cased[0].islower() and cased[1:].isupper():
        # оНДЮПНЙ: Windows-1251 and KOI8-R swap the cases, so each reads the other's
        # "Подарок" so; nobody writes it.
        bad = True
    if script == "GREEK" and "ς" in letters[:-1]:
        bad = True  # a final sigma inside a word: Russian т read as Greek
    odd = (
        _odd_case(cased)
        # Êîä: Russian read as Western European; few real Latin words are all accents.
        or (script == "LATIN" and len(letters) >= 3 and len(foreign) == len(letters))
    )
    if script == "LATIN":
        major = [language.alphabet for language in fits if language.major]
        common = sum(any(letter in alphabet for alphabet in major) for letter in foreign)
    else:
        frequent = _COMMON.get(script, frozenset())
        common = sum(unicodedata.normalize("NFD", letter)[0] in frequent for letter in foreign)
    return _Word(bad, odd, len(foreign), common, frozenset(fits) if foreign else frozenset())


def _odd_case(cased: str) -> bool:
    """Return True unless the (cased) letters are all lower case, all upper case, or a capital
    and lower case: ΒΕΡΝΐ is ВЕСНА read as Greek (but a code may be SummerSALE)."""
    if len(cased) < 2:
        return False
    return not (cased.islower() or cased.isupper() or (cased[0].isupper() and cased[1:].islower()))


@dataclass(frozen=True)
class Reading:
    """What a sample reads like in `codec`: `plausible` if next to no word in it is bad (no
    language of the code page writes it so); `rank` orders readings best first."""

    codec: str
    words: int  # that hold a character beyond ASCII
    bad: int
    # How many languages it takes to write the words: a file is in one, but Latvian dāvana,
    # ķirsis read as Windows-1252 is French dâvana and Spanish íirsis.
    languages: int
    odd: int
    commonness: float  # the share of common letters among those beyond ASCII
    mess: float
    preference: int

    @property
    def plausible(self) -> bool:
        return self.bad <= _tolerated(self.words)

    def rank(self) -> tuple:
        return (
            self.bad,
            self.languages,
            self.odd,
            -self.commonness,
            self.mess,
            self.preference,
        )


def rank_readings(sample: bytes, candidates: tuple[str, ...]) -> list[Reading]:
    """Return the readings of the sample, best first, one for each text: code pages that read
    the sample the same are one reading, named by the one earlier among `candidates`."""
    texts: dict[str, list[str]] = {}
    for codec in candidates:
        texts.setdefault(sample.decode(codec, errors="replace"), []).append(codec)
    readings = [(text, codecs_, order) for order, (text, codecs_) in enumerate(texts.items())]
    # A wrong reading shows within a few words: judging it to the end only serves to rank it,
    # needed when no reading is plausible (64 KB of Cyrillic codes: 0.2 s instead of 0.7 s).
    judged = [_judge(*reading, quick=True) for reading in readings]
    if not any(reading.plausible for reading in judged):
        judged = [_judge(*reading) for reading in readings]
    return sorted(judged, key=Reading.rank)


def _judge(text: str, codecs_: list[str], preference: int, *, quick: bool = False) -> Reading:
    """Judge one reading of the sample, which the first of `codecs_` (and the others) give;
    `quick`: stop as soon as it is implausible."""
    languages = tuple(dict.fromkeys(lang for codec in codecs_ for lang in _LANGUAGES[codec]))
    counts = Counter(word for word in _WORD.findall(text) if not word.isascii())
    words = sum(counts.values())
    bad = odd = letters = common = 0
    fits: Counter[frozenset[_Language]] = Counter()
    for word, count in counts.items():
        judgement = _judge_word(word, languages)
        bad += count * judgement.bad
        odd += count * judgement.odd
        letters += count * judgement.letters
        common += count * judgement.common
        fits[judgement.languages] += count
        if quick and bad > _tolerated(words):
            break
    # A space beyond ASCII inside a word is a letter read as a space: Mac OS Cyrillic reads
    # Windows-1252 "FÊTE10" as "F\u00a0TE10", which leaves no word beyond ASCII to judge.
    split = len(_SPLIT_WORD.findall(text))
    words += split
    bad += split
    commonness = common / letters if letters else 1.0
    # On random codes the right reading's mess reaches 2.0 (ÀBËÊÔË), so it never vetoes.
    mess = mess_ratio(text, maximum_threshold=1.0)
    return Reading(
        codecs_[0], words, bad, _languages_needed(fits), odd, commonness, mess, preference
    )


def _languages_needed(fits: Counter[frozenset[_Language]]) -> int:
    """Return how many languages write all the words, each word written by one of the
    languages it fits in (greedily: the language that fits most words first)."""
    uncovered = {languages: count for languages, count in fits.items() if languages}
    needed = 0
    while uncovered:
        tally: Counter[_Language] = Counter()
        for languages, count in uncovered.items():
            for language in languages:
                tally[language] += count
        best = tally.most_common(1)[0][0]
        uncovered = {languages: n for languages, n in uncovered.items() if best not in languages}
        needed += 1
    return needed


def _tolerated(words: int) -> int:
    """Return how many bad words a plausible reading may have: a stray one in a long sample (a
    typo, a pasted symbol) does not spoil it."""
    return words // 100
