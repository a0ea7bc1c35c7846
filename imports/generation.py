"""Draw random promo codes from a cryptographic source."""

import secrets
from dataclasses import dataclass

from django.utils.formats import number_format
from django.utils.translation import gettext_lazy

# Letters and digits without the look-alikes O/0 and I/1/L.
DEFAULT_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
DEFAULT_LENGTH = 10
MIN_LENGTH = 4
MAX_LENGTH = 40
# At most this share of the possible codes may exist, so that guessing a code stays hopeless and
# a fresh draw rarely collides.
MAX_FILL = 0.01

ALPHABET_TOO_SMALL = gettext_lazy("The alphabet needs at least two different characters.")
ALPHABET_NOT_TYPABLE = gettext_lazy(
    "The alphabet may contain only characters that can be typed, no spaces."
)
TOO_MANY_CODES = gettext_lazy(
    "%(length)s characters from an alphabet of %(size)s give %(capacity)s possible codes; to keep "
    "them hard to guess, at most %(limit)s may exist in the pool (%(existing)s already do), so at "
    "most %(available)s can be generated. Choose a longer length."
)


@dataclass(frozen=True)
class CodeFormat:
    length: int = DEFAULT_LENGTH
    alphabet: str = DEFAULT_ALPHABET
    prefix: str = ""

    @property
    def capacity(self) -> int:
        return len(self.alphabet) ** self.length

    @property
    def limit(self) -> int:
        return int(self.capacity * MAX_FILL)

    def available_for_generation(self, existing: int) -> int:
        """Return how many more codes this format may generate in a pool of `existing` codes."""
        return max(0, self.limit - existing)

    def too_many(self, count: int, existing: int) -> str | None:
        """Return why `count` codes cannot be generated, or None when they can."""
        available = self.available_for_generation(existing)
        if count <= available:
            return None

        def count(n):
            return number_format(n, force_grouping=True)

        return TOO_MANY_CODES % {
            "length": self.length,
            "size": len(self.alphabet),
            "capacity": count(self.capacity),
            "limit": count(self.limit),
            "existing": count(existing),
            "available": count(available),
        }


def normalize_alphabet(alphabet: str) -> str:
    """Return the alphabet's distinct characters in order; raise ValueError if it is unusable."""
    characters = "".join(dict.fromkeys(alphabet))
    if not characters.isprintable() or " " in characters:
        raise ValueError(str(ALPHABET_NOT_TYPABLE))
    if len(characters) < 2:
        raise ValueError(str(ALPHABET_TOO_SMALL))
    return characters


def generate_codes(code_format: CodeFormat, count: int) -> list[str]:
    """Return `count` random codes of the format (they may repeat; the loader skips repeats).

    Bytes from the OS's cryptographic source are mapped to the alphabet; bytes past the largest
    multiple of the alphabet's size are dropped, so every character is equally likely (no modulo
    bias). For an ASCII alphabet, str.translate does the mapping with no Python loop per
    character.
    """
    alphabet, length, prefix = code_format.alphabet, code_format.length, code_format.prefix
    size = len(alphabet)
    if size > 256:
        return [
            prefix + "".join(secrets.choice(alphabet) for _ in range(length)) for _ in range(count)
        ]
    usable = 256 - 256 % size
    needed = count * length
    drawn = bytearray()
    while len(drawn) < needed:
        drawn += secrets.token_bytes(needed - len(drawn) + 64)[: needed - len(drawn) + 64]
        drawn = drawn.translate(None, bytes(range(usable, 256)))
    drawn = drawn[:needed]
    if alphabet.isascii():
        table = bytes.maketrans(
            bytes(range(usable)), bytes(ord(alphabet[b % size]) for b in range(usable))
        )
        letters = drawn.translate(table).decode("ascii")
    else:
        letters = "".join(alphabet[b % size] for b in drawn)
    return [prefix + letters[i : i + length] for i in range(0, needed, length)]
