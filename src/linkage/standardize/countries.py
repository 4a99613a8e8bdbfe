"""Countries and nationalities: codes, names in any language pycountry's locales know, ICAO codes
to ISO 3166-1 alpha-3.

The lookup table is built once, on first use, from pycountry: codes, names, official and common
names, their Chinese translations (zh_CN / zh_TW / zh_HK) and then the translations of every other
locale pycountry ships (Deutschland, Allemagne, Россия, 대한민국 ...), plus the aliases below.
English, the aliases and Chinese come first; a spelling that two locales give to different
countries is left out as ambiguous. Keys are compared after NFKC, removal of diacritics, case
folding and removal of spaces and punctuation.
"""

from __future__ import annotations

import gettext
import math
import os
import unicodedata
from functools import lru_cache

import pycountry

from linkage.standardize import InvalidValue

__all__ = ["to_alpha2", "to_alpha3"]

# Aliases in common use that pycountry does not spell (English variants and demonyms).
_ENGLISH_ALIASES: dict[str, str] = {
    "USA": "USA", "U.S.A.": "USA", "US": "USA", "U.S.": "USA", "America": "USA",
    "United States": "USA", "American": "USA",
    "UK": "GBR", "U.K.": "GBR", "Great Britain": "GBR", "Britain": "GBR", "England": "GBR",
    "Scotland": "GBR", "Wales": "GBR", "Northern Ireland": "GBR", "British": "GBR",
    "South Korea": "KOR", "Republic of Korea": "KOR", "Korea": "KOR", "ROK": "KOR", "Korean": "KOR",
    "North Korea": "PRK", "DPRK": "PRK", "DPR Korea": "PRK",
    "Russia": "RUS", "Russian": "RUS", "Vietnam": "VNM", "Vietnamese": "VNM",
    "Iran": "IRN", "Iranian": "IRN", "Persia": "IRN", "Syria": "SYR", "Syrian": "SYR",
    "Laos": "LAO", "Lao": "LAO", "Taiwan": "TWN", "Chinese Taipei": "TWN", "Taiwanese": "TWN",
    "Hong Kong": "HKG", "Hong Kong SAR": "HKG", "Hong Kong, China": "HKG", "HKSAR": "HKG",
    "Hongkong": "HKG", "Macau": "MAC", "Macao": "MAC", "Macau SAR": "MAC", "Macao SAR": "MAC",
    "Macau, China": "MAC", "Macao, China": "MAC",
    "China": "CHN", "PRC": "CHN", "P.R. China": "CHN", "P.R.C.": "CHN", "Mainland China": "CHN",
    "People's Republic of China": "CHN", "Chinese": "CHN",
    "Czech Republic": "CZE", "Czech": "CZE", "Turkey": "TUR", "Turkiye": "TUR", "Turkish": "TUR",
    "Ivory Coast": "CIV", "Holland": "NLD", "The Netherlands": "NLD", "Dutch": "NLD",
    "Burma": "MMR", "Burmese": "MMR", "Swaziland": "SWZ", "Macedonia": "MKD",
    "Cape Verde": "CPV", "East Timor": "TLS", "Vatican": "VAT", "Vatican City": "VAT",
    "Moldova": "MDA", "Bolivia": "BOL", "Venezuela": "VEN", "Tanzania": "TZA",
    "Micronesia": "FSM", "Palestine": "PSE", "Brunei": "BRN",
    "DR Congo": "COD", "DRC": "COD", "Congo-Kinshasa": "COD",
    "Democratic Republic of the Congo": "COD", "Congo-Brazzaville": "COG",
    "Republic of the Congo": "COG", "UAE": "ARE", "U.A.E.": "ARE", "Emirati": "ARE",
    "KSA": "SAU", "Saudi": "SAU", "Saudi Arabian": "SAU",
    "German": "DEU", "West Germany": "DEU", "French": "FRA", "Japanese": "JPN",
    "Indian": "IND", "Pakistani": "PAK", "Thai": "THA", "Malaysian": "MYS",
    "Singaporean": "SGP", "Filipino": "PHL", "Philippine": "PHL", "Indonesian": "IDN",
    "Australian": "AUS", "New Zealander": "NZL", "Canadian": "CAN", "Italian": "ITA",
    "Spanish": "ESP", "Swiss": "CHE", "Swedish": "SWE", "Egyptian": "EGY", "Nigerian": "NGA",
    "Kazakh": "KAZ", "Kazakhstani": "KAZ", "Mongolian": "MNG", "Cambodian": "KHM",
    "Nepalese": "NPL", "Nepali": "NPL", "Bangladeshi": "BGD", "Brazilian": "BRA",
    "Argentine": "ARG", "Argentinian": "ARG", "Mexican": "MEX", "South African": "ZAF",
    "Ukrainian": "UKR", "Polish": "POL", "Kosovo": "XKX",
    "Saint Lucia": "LCA", "St Lucia": "LCA", "St Kitts and Nevis": "KNA",
    "St Vincent and the Grenadines": "VCT", "Bahamas": "BHS", "Gambia": "GMB",
    "Taiwan, China": "TWN", "Taiwan (China)": "TWN", "Hong Kong SAR, China": "HKG",
}

# Chinese short forms (simplified and traditional) that the locale files do not give.
_CHINESE_ALIASES: dict[str, str] = {
    "美国": "USA", "美國": "USA", "英国": "GBR", "英國": "GBR", "韩国": "KOR", "韓國": "KOR",
    "南韩": "KOR", "南韓": "KOR", "朝鲜": "PRK", "北韩": "PRK", "北韓": "PRK",
    "俄罗斯": "RUS", "俄羅斯": "RUS", "俄国": "RUS", "俄罗斯联邦": "RUS", "俄羅斯聯邦": "RUS", "德国": "DEU", "德國": "DEU",
    "法国": "FRA", "法國": "FRA", "日本": "JPN", "越南": "VNM", "老挝": "LAO", "寮國": "LAO",
    "伊朗": "IRN", "叙利亚": "SYR", "敘利亞": "SYR",
    "中国": "CHN", "中國": "CHN", "中国大陆": "CHN", "中国内地": "CHN", "中华人民共和国": "CHN",
    "中国香港": "HKG", "香港": "HKG", "中國香港": "HKG", "中国香港特别行政区": "HKG",
    "中国澳门": "MAC", "澳门": "MAC", "澳門": "MAC", "中國澳門": "MAC", "中国澳门特别行政区": "MAC",
    "中国台湾": "TWN", "台湾": "TWN", "臺灣": "TWN", "台灣": "TWN", "中國台灣": "TWN",
    "巴基斯坦": "PAK", "印度": "IND", "泰国": "THA", "泰國": "THA", "马来西亚": "MYS",
    "馬來西亞": "MYS", "新加坡": "SGP", "菲律宾": "PHL", "菲律賓": "PHL",
    "印度尼西亚": "IDN", "印尼": "IDN", "澳大利亚": "AUS", "澳大利亞": "AUS", "澳洲": "AUS",
    "新西兰": "NZL", "紐西蘭": "NZL", "加拿大": "CAN", "意大利": "ITA", "義大利": "ITA",
    "西班牙": "ESP", "荷兰": "NLD", "荷蘭": "NLD", "瑞士": "CHE", "瑞典": "SWE",
    "土耳其": "TUR", "埃及": "EGY", "尼日利亚": "NGA", "奈及利亞": "NGA",
    "沙特阿拉伯": "SAU", "沙特": "SAU", "沙烏地阿拉伯": "SAU", "阿联酋": "ARE",
    "阿拉伯联合酋长国": "ARE", "哈萨克斯坦": "KAZ", "蒙古": "MNG", "蒙古国": "MNG",
    "缅甸": "MMR", "緬甸": "MMR", "柬埔寨": "KHM", "尼泊尔": "NPL", "尼泊爾": "NPL",
    "孟加拉国": "BGD", "孟加拉": "BGD", "巴西": "BRA", "阿根廷": "ARG", "墨西哥": "MEX",
    "南非": "ZAF", "乌克兰": "UKR", "烏克蘭": "UKR", "波兰": "POL", "波蘭": "POL",
    "以色列": "ISR", "葡萄牙": "PRT", "希腊": "GRC", "比利时": "BEL", "奥地利": "AUT",
    "丹麦": "DNK", "挪威": "NOR", "芬兰": "FIN", "爱尔兰": "IRL", "捷克": "CZE",
    "匈牙利": "HUN", "罗马尼亚": "ROU", "伊拉克": "IRQ", "阿富汗": "AFG", "斯里兰卡": "LKA",
    "乌兹别克斯坦": "UZB", "吉尔吉斯斯坦": "KGZ", "塔吉克斯坦": "TJK", "土库曼斯坦": "TKM",
    "文莱": "BRN", "东帝汶": "TLS", "朝鲜民主主义人民共和国": "PRK", "大韩民国": "KOR",
    "科索沃": "XKX",
}

# Short names in the country's own language where the locale files give only the official form.
_NATIVE_ALIASES: dict[str, str] = {
    "Россия": "RUS", "الإمارات": "ARE", "Беларусь": "BLR", "Україна": "UKR", "Қазақстан": "KAZ",
    "한국": "KOR", "남한": "KOR", "조선": "PRK", "북한": "PRK", "Việt Nam": "VNM", "Ελλάδα": "GRC",
    "Česko": "CZE", "Srbija": "SRB", "Hrvatska": "HRV", "Magyarország": "HUN", "Sverige": "SWE",
    "Norge": "NOR", "Danmark": "DNK", "Suomi": "FIN", "Éire": "IRL", "Nippon": "JPN", "Nihon": "JPN",
    "Misr": "EGY", "مصر": "EGY", "السعودية": "SAU", "ایران": "IRN", "پاکستان": "PAK", "भारत": "IND",
    "Bharat": "IND", "ประเทศไทย": "THA", "Pilipinas": "PHL", "Türkiye Cumhuriyeti": "TUR",
}

# ICAO Doc 9303 codes that differ from ISO 3166-1 alpha-3.
_ICAO_CODES: dict[str, str] = {
    "D": "DEU", "GBD": "GBR", "GBN": "GBR", "GBO": "GBR", "GBS": "GBR", "GBP": "GBR",
    "RKS": "XKX", "XK": "XKX", "XKX": "XKX",
}

# Values that mean "nationality unknown / not a country": not an error, no country.
_NO_COUNTRY = (
    "UNK", "XXA", "XXB", "XXC", "XXX", "UNA", "UNO", "UNKNOWN", "STATELESS", "NONE",
    "未知", "不详", "无国籍", "無國籍",
)

# Placeholders compared as written, before keying ("NA" alone is Namibia).
_NOT_APPLICABLE = ("N/A", "n/a", "-", "--", "/")

_CHINESE_LOCALES = ("zh_CN", "zh_TW", "zh_HK")


def _key(text: str) -> str:
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = text.replace("&", " and ")
    if text.startswith("the "):
        text = text[4:]
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def _pycountry_names(country: object) -> list[str]:
    return [
        name
        for attr in ("name", "official_name", "common_name")
        if (name := getattr(country, attr, None))
    ]


def _translations(locales: tuple[str, ...]) -> list[gettext.NullTranslations]:
    found = []
    for locale in locales:
        try:
            found.append(gettext.translation("iso3166-1", pycountry.LOCALES_DIR, languages=[locale]))
        except OSError:
            continue
    return found


def _other_locales() -> tuple[str, ...]:
    try:
        names = os.listdir(pycountry.LOCALES_DIR)
    except OSError:
        return ()
    return tuple(sorted(n for n in names if n not in _CHINESE_LOCALES and n != "en"))


@lru_cache(maxsize=1)
def _main_lookup() -> dict[str, str | None]:
    """Codes, English and Chinese names, the alias tables: what nearly every export writes."""
    lookup: dict[str, str | None] = {}
    for country in pycountry.countries:
        for spelling in (country.alpha_2, country.alpha_3, country.numeric, *_pycountry_names(country)):
            lookup.setdefault(_key(spelling), country.alpha_3)
    for table in (_ENGLISH_ALIASES, _CHINESE_ALIASES, _NATIVE_ALIASES, _ICAO_CODES):
        for spelling, alpha3 in table.items():
            lookup[_key(spelling)] = alpha3
    for spelling in _NO_COUNTRY:
        lookup[_key(spelling)] = None
    for translation in _translations(_CHINESE_LOCALES):
        for country in pycountry.countries:
            for name in _pycountry_names(country):
                lookup.setdefault(_key(translation.gettext(name)), country.alpha_3)
    return lookup


@lru_cache(maxsize=1)
def _other_lookup() -> dict[str, str]:
    """The spellings only another language's locale gives (Deutschland, Allemagne), unless two
    countries claim one. Built the first time a value is not in the main table (it reads every
    locale pycountry ships, which takes most of a second)."""
    main = _main_lookup()
    claims: dict[str, set[str]] = {}
    for translation in _translations(_other_locales()):
        for country in pycountry.countries:
            for name in _pycountry_names(country):
                key = _key(translation.gettext(name))
                if key and key not in main:
                    claims.setdefault(key, set()).add(country.alpha_3)
    return {key: next(iter(claimed)) for key, claimed in claims.items() if len(claimed) == 1}


def _find(key: str) -> tuple[bool, str | None, bool]:
    """(found, alpha-3 or None, from another language's locale) for a keyed spelling."""
    main = _main_lookup()
    if key in main:
        return True, main[key], False
    other = _other_lookup()
    if key in other:
        return True, other[key], True
    return False, None, False


OTHER_LANGUAGE_NOTE = "country name in another language; read as its code"


def other_language_note(value: object) -> str | None:
    """A note for a country written in a language other than English or Chinese (None otherwise)."""
    if not isinstance(value, str):
        return None
    key = _key(value)
    for suffix in ("", *_NATIONALITY_SUFFIXES):
        stem = key.removesuffix(suffix) if suffix else key
        found, _, other = _find(stem)
        if found:
            return OTHER_LANGUAGE_NOTE if other else None
    return None


_NATIONALITY_SUFFIXES = ("籍", "人", "国籍")


def to_alpha3(value: object) -> str | None:
    """Return the ISO 3166-1 alpha-3 code; None when empty or explicitly unknown ("UNK").

    Accepts alpha-2/alpha-3/ICAO codes, country names in English, Chinese and every language
    pycountry's locales know, and common variants.
    Raises InvalidValue("unknown country") for anything else. Idempotent on its output.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1000:
        value = f"{value:03d}"  # ISO 3166-1 numeric
    if not isinstance(value, str):
        raise InvalidValue("unknown country")
    if value.strip() in _NOT_APPLICABLE:
        return None
    key = _key(value)
    if not key:
        if value.strip():
            raise InvalidValue("unknown country")
        return None
    found, alpha3, _ = _find(key)
    if found:
        return alpha3
    for suffix in _NATIONALITY_SUFFIXES:
        stem = key.removesuffix(suffix)
        if stem != key:
            found, alpha3, _ = _find(stem)
            if found:
                return alpha3
    raise InvalidValue("unknown country")


@lru_cache(maxsize=1024)
def to_alpha2(alpha3: str) -> str | None:
    """The ISO 3166-1 alpha-2 code of an alpha-3 code (e.g. a phone region), None if unknown."""
    country = pycountry.countries.get(alpha_3=alpha3)
    return country.alpha_2 if country is not None else None
