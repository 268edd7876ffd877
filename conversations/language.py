"""Which language to answer in: the script and the function words of what the citizen wrote."""
from __future__ import annotations

import re

_ARABIC = re.compile(r"[\u0600-\u06FF\u0750-\u077F\u08A0-\u08FF]")
_TIFINAGH = re.compile(r"[\u2D30-\u2D7F]")
_LATIN_WORD = re.compile(r"[a-zA-Zàâçéèêëîïôûùüÿœæ0-9']+")
_FR = frozenset("""le la les des un une du de et est pas je j' nous vous mon ma mes notre votre depuis
avec pour dans sur que qui il elle ils ce cette mais très bonjour merci svp stp rien toujours
quartier eau électricité coupure rue plainte réclamation monsieur madame aucun personne""".split())
_EN = frozenset("""the a an and is are was were not i my we our you your since with for in on that this
there have has been no street please hello hi thanks thank water power from of to it any""".split())
# Arabizi: Arabic written in Latin letters with digits standing for letters.
_ARABIZI_HINT = re.compile(r"\b\w*[a-z][2-9][a-z]\w*|\b[2-9][a-z]{2,}\b|\b\w*[a-z]{2,}[2-9]\b", re.I)
_DARIJA = frozenset("""salam slm dyal dial diali dyali wach wash kayn kayen makaynch mazal bzaf ghir
chi hna had dak lma daw mn f w l 3la 3andi 3ndi 7na ana nta ntouma rah raha rani 3afakom 3afak
brit bghit khoya khti drari chhal ila</""".split())


def detect_language(text: str, default: str | None = None) -> str | None:
    """``ar`` for Arabic script and for Arabizi (Darija in Latin letters), ``tzm`` for Tifinagh,
    else ``fr`` or ``en`` by function words; ``default`` when nothing tells."""
    if not text or not text.strip():
        return default
    arabic = len(_ARABIC.findall(text))
    letters = sum(ch.isalpha() for ch in text)
    if letters == 0:
        return default
    if len(_TIFINAGH.findall(text)) > letters / 2:
        return "tzm"
    if arabic >= max(3, letters * 0.3):
        return "ar"
    words = [w.lower() for w in _LATIN_WORD.findall(text)]
    fr = sum(w in _FR for w in words) + sum(ch in "àâçéèêëîïôûùœ" for ch in text.lower())
    en = sum(w in _EN for w in words)
    darija = sum(w in _DARIJA for w in words) + 2 * len(_ARABIZI_HINT.findall(text))
    if darija > max(fr, en):
        return "ar"
    if fr == en == 0:
        return default
    return "fr" if fr >= en else "en"
