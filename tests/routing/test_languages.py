"""Routing in each language and script, with sentences written for these tests."""
from __future__ import annotations

import pytest

from conversations.routing import Router

MSA = [
    ("انقطع الماء الصالح للشرب عن حينا منذ ثلاثة أيام دون أي إشعار", "water"),
    ("تعرف الطريق المؤدية إلى السوق حفرا عميقة تهدد سلامة السائقين", "roads"),
    ("طلب مني موظف بالمقاطعة مبلغ 200 درهم مقابل تسليمي الوثيقة", "integrity"),
    ("لم أتوصل بمعاش التقاعد منذ أربعة أشهر رغم إيداع جميع الوثائق بالصندوق", "social_security"),
    ("يعاني التلاميذ من غياب أستاذ اللغة العربية منذ بداية الموسم الدراسي", "education"),
    ("نطالب بإصلاح أعمدة الإنارة العمومية المعطلة في شارعنا", "street_lighting"),
]
DARIJA_ARABIC = [
    ("الضو مقطوع علينا من البارح والماكلة خسرات فالتلاجة", "electricity"),
    ("الزبل مكدس قدام الدار والكاميو مادازش من سيمانة", "waste"),
    ("مشيت للسبيطار وبقيت نتسنى الطبيب حتى للعشية وماجاش", "health"),
    ("الطاكسي ماقبلش يديني وطلب ليا الضعف ديال الثمن", "transport"),
    ("الريزو ديال التيليفون ماكاينش فالدوار نهائيا", "telecom"),
    ("شي واحد كيبني طابق زايد بلا رخصة حدا دارنا", "urbanism"),
    ("تسرقات ليا الموطور البارح فالليل وعيطت للبوليس وماجاوش", "security"),
]
ARABIZI = [
    ("lma m9tou3 3lina mn lbare7 f derb", "water"),
    ("daw tafi f dar w l'facture jat ghalya bzaf", "electricity"),
    ("kayna 7fra kbira f tri9 w tomobilat kaytkesro", "roads"),
    ("zbel 3amer f zan9a w ri7a khayba", "waste"),
    ("tbib ma jach l sbitar w bqina kantsnaw", "health"),
    ("bghit passeport w lmo9ata3a ma bghawch y3tiwni l wra9", "civil_status"),
    ("patron ma kaysre7ch biya f CNSS", "social_security"),
    ("l'mo9adem tlab mni 200 dh bach y3tini chahada", "integrity"),
]
FRENCH = [
    ("Coupure d'eau depuis trois jours dans tout le quartier, aucune information", "water"),
    ("Les lampadaires de notre rue sont éteints depuis un mois, tout est noir", "street_lighting"),
    ("Mon fils n'a pas de professeur de mathématiques depuis la rentrée", "education"),
    ("J'attends mon passeport depuis quatre mois, la préfecture ne répond pas", "civil_status"),
    ("Le bus de la ligne 12 ne passe plus depuis deux semaines", "transport"),
    ("Ma taxe d'habitation a doublé sans explication", "taxes"),
    ("Un policier m'a demandé 300 DH en liquide pour ne pas dresser de PV", "integrity"),
]
ENGLISH = [
    ("There is a huge pothole on the main road near the station", "roads"),
    ("Our internet has been down for a week and the operator does nothing", "telecom"),
    ("The garbage has not been collected for ten days", "waste"),
    ("Someone stole my phone at the tram stop and the police did nothing", "security"),
    ("I applied for a building permit eight months ago and still have no answer", "urbanism"),
    ("My pension has not been paid since March", "social_security"),
]
MIXED = [
    ("Salam, l'internet ma khdamch mn 3 jours, le service client ma kayjawbch", "telecom"),
    ("Bonjour, lma ma kaynch f l'immeuble depuis hier, 3afakom", "water"),
    ("الضو ديال الزنقة طافي, la rue est dans le noir total", "street_lighting"),
    ("Le médecin ma jach l'centre de santé, bqina 4 heures", "health"),
]


@pytest.mark.parametrize("text, category", MSA)
def test_modern_standard_arabic(router: Router, text: str, category: str) -> None:
    result = router.route(text)
    assert result.category == category, result
    assert result.language == "ar"


@pytest.mark.parametrize("text, category", DARIJA_ARABIC)
def test_darija_in_arabic_script(router: Router, text: str, category: str) -> None:
    result = router.route(text)
    assert result.category == category, result
    assert result.language == "ar"


@pytest.mark.parametrize("text, category", ARABIZI)
def test_arabizi(router: Router, text: str, category: str) -> None:
    result = router.route(text)
    assert result.category == category, result
    assert result.language == "ar"


@pytest.mark.parametrize("text, category", FRENCH)
def test_french(router: Router, text: str, category: str) -> None:
    result = router.route(text)
    assert result.category == category, result
    assert result.language == "fr"


@pytest.mark.parametrize("text, category", ENGLISH)
def test_english(router: Router, text: str, category: str) -> None:
    result = router.route(text)
    assert result.category == category, result
    assert result.language == "en"


@pytest.mark.parametrize("text, category", MIXED)
def test_mixed_languages(router: Router, text: str, category: str) -> None:
    result = router.route(text)
    assert result.category == category, result
    assert result.language in ("ar", "fr")


def test_reasons_name_the_deciding_words(router: Router) -> None:
    result = router.route("الما مقطوع فوهران")
    assert result.category == "water"
    assert any(r.startswith("water:") and "الما" in r for r in result.reasons)
    assert "place: 'فوهران' -> oran" in result.reasons
