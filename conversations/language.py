"""Which language to answer in: the script and the function words of what the citizen wrote."""
from __future__ import annotations

import re

_ARABIC = re.compile(r"[\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF]+")
_TIFINAGH = re.compile(r"[\u2D30-\u2D7F]")
_LATIN_WORD = re.compile(r"[a-zA-Zàâçéèêëîïôûùüÿœæ0-9']+")
_FR_LETTERS = "àâçéèêëîïôûùœ"
_FR = frozenset("""le la les des un une du de et est pas je j' nous vous mon ma mes notre votre depuis
avec pour dans sur que qui il elle ils ce cette mais très bonjour merci svp stp rien toujours
quartier eau électricité coupure rue plainte réclamation monsieur madame aucun personne""".split())
_EN = frozenset("""the a an and is are was were not i my we our you your since with for in on that this
there have has been no street please hello hi thanks thank water power from of to it any""".split())
# Arabizi: Arabic written in Latin letters with digits standing for letters.
_ARABIZI_HINT = re.compile(r"\b\w*[a-z][2-9][a-z]\w*|\b[2-9][a-z]{2,}\b|\b\w*[a-z]{2,}[2-9]\b", re.I)
# Every Arabizi hint is a whole word with one of these digits next to a letter ([a-z] ignoring case
# also matches these four non-ASCII letters); looking for those first is much faster than running
# the hint pattern over the whole text, and counts the same.
_LETTER_DIGIT = re.compile("[2-9](?:(?<=[a-zA-Z\u0130\u0131\u017f\u212a].)|(?=[a-zA-Z\u0130\u0131\u017f\u212a]))")
_DIGIT_WORD = re.compile(r"\b[^\W2-9]*+[2-9]\w*")
_DARIJA = frozenset("""salam slm dyal dial diali dyali wach wash kayn kayen makaynch mazal bzaf ghir
chi hna had dak lma daw mn f w l 3la 3andi 3ndi 7na ana nta ntouma rah raha rani 3afakom 3afak
brit bghit khoya khti drari chhal ila</""".split())


def detect_language(text: str, default: str | None = None) -> str | None:
    """``ar`` for Arabic script and for Arabizi (Darija in Latin letters), ``tzm`` for Tifinagh,
    else ``fr`` or ``en`` by function words; ``default`` when nothing tells."""
    if not text or not text.strip() or not any(map(str.isalpha, text)):
        return default
    if not text.isascii():
        tifinagh = len(_TIFINAGH.findall(text))
        if tifinagh and tifinagh > _letters(text) / 2:
            return "tzm"
        arabic = sum(map(len, _ARABIC.findall(text)))
        # There are no more letters than characters: the letters are only counted when that is not enough.
        if arabic >= 3 and (arabic >= len(text) * 0.3 or arabic >= _letters(text) * 0.3):
            return "ar"
    words = list(map(str.lower, _LATIN_WORD.findall(text)))
    fr = sum(map(_FR.__contains__, words))
    if not text.isascii():
        fr += sum(map(text.lower().count, _FR_LETTERS))
    en = sum(map(_EN.__contains__, words))
    darija = sum(map(_DARIJA.__contains__, words))
    if darija <= max(fr, en) and _LETTER_DIGIT.search(text):
        darija += 2 * sum(1 for word in _DIGIT_WORD.findall(text) if _ARABIZI_HINT.match(word))
    if darija > max(fr, en):
        return "ar"
    if fr == en == 0:
        return default
    return "fr" if fr >= en else "en"


def _letters(text: str) -> int:
    return sum(map(str.isalpha, text))
