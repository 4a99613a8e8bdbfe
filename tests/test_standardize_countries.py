"""Countries: codes, English and Chinese names, ICAO codes -> ISO 3166-1 alpha-3."""

from __future__ import annotations

import pycountry
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkage.standardize import InvalidValue
from linkage.standardize.countries import to_alpha3

ENGLISH = [
    ("DE", "DEU"), ("de", "DEU"), ("DEU", "DEU"), ("Germany", "DEU"), ("GERMANY", "DEU"),
    ("Federal Republic of Germany", "DEU"), ("USA", "USA"), ("U.S.A.", "USA"), ("US", "USA"),
    ("United States", "USA"), ("United States of America", "USA"), ("UK", "GBR"), ("GB", "GBR"),
    ("Great Britain", "GBR"), ("England", "GBR"), ("United Kingdom", "GBR"), ("South Korea", "KOR"),
    ("Korea, Republic of", "KOR"), ("Republic of Korea", "KOR"), ("North Korea", "PRK"),
    ("Russia", "RUS"), ("Russian Federation", "RUS"), ("Vietnam", "VNM"), ("Viet Nam", "VNM"),
    ("Iran", "IRN"), ("Syria", "SYR"), ("Laos", "LAO"), ("Taiwan", "TWN"), ("Hong Kong", "HKG"),
    ("Hong Kong SAR", "HKG"), ("Macau", "MAC"), ("Macao", "MAC"), ("Czech Republic", "CZE"),
    ("Czechia", "CZE"), ("Turkey", "TUR"), ("Türkiye", "TUR"), ("Turkiye", "TUR"),
    ("Ivory Coast", "CIV"), ("Côte d'Ivoire", "CIV"), ("China", "CHN"), ("PRC", "CHN"),
    ("The Netherlands", "NLD"), ("Trinidad & Tobago", "TTO"), ("  france  ", "FRA"),
    ("Chinese", "CHN"), ("British", "GBR"), ("156", "CHN"), (156, "CHN"),
]
CHINESE = [
    ("美国", "USA"), ("英国", "GBR"), ("韩国", "KOR"), ("朝鲜", "PRK"), ("俄罗斯", "RUS"), ("德国", "DEU"),
    ("法国", "FRA"), ("日本", "JPN"), ("越南", "VNM"), ("老挝", "LAO"), ("伊朗", "IRN"), ("叙利亚", "SYR"),
    ("中国", "CHN"), ("中华人民共和国", "CHN"), ("中国香港", "HKG"), ("香港", "HKG"), ("中国澳门", "MAC"),
    ("澳门", "MAC"), ("中国台湾", "TWN"), ("台湾", "TWN"), ("巴基斯坦", "PAK"), ("印度", "IND"),
    ("泰国", "THA"), ("马来西亚", "MYS"), ("新加坡", "SGP"), ("菲律宾", "PHL"), ("印度尼西亚", "IDN"),
    ("印尼", "IDN"), ("澳大利亚", "AUS"), ("澳洲", "AUS"), ("新西兰", "NZL"), ("加拿大", "CAN"),
    ("意大利", "ITA"), ("西班牙", "ESP"), ("荷兰", "NLD"), ("瑞士", "CHE"), ("瑞典", "SWE"),
    ("土耳其", "TUR"), ("埃及", "EGY"), ("尼日利亚", "NGA"), ("沙特阿拉伯", "SAU"), ("沙特", "SAU"),
    ("阿联酋", "ARE"), ("哈萨克斯坦", "KAZ"), ("蒙古", "MNG"), ("缅甸", "MMR"), ("柬埔寨", "KHM"),
    ("尼泊尔", "NPL"), ("孟加拉国", "BGD"), ("巴西", "BRA"), ("阿根廷", "ARG"), ("墨西哥", "MEX"),
    ("南非", "ZAF"), ("乌克兰", "UKR"), ("波兰", "POL"), ("大韩民国", "KOR"), ("德國", "DEU"),
    ("美國", "USA"), ("中国籍", "CHN"), (" 美 国 ", "USA"), ("葡萄牙", "PRT"), ("肯尼亚", "KEN"),
]
ICAO = [("D", "DEU"), ("GBD", "GBR"), ("GBN", "GBR"), ("GBO", "GBR"), ("GBS", "GBR"), ("GBP", "GBR")]
NONE = [None, "", "  ", "UNK", "unk", "XXX", "N/A", "未知", "无国籍"]


@pytest.mark.parametrize(("value", "expected"), ENGLISH + CHINESE + ICAO)
def test_to_alpha3(value, expected):
    assert to_alpha3(value) == expected


@pytest.mark.parametrize("value", NONE)
def test_unknown_nationality_is_none(value):
    assert to_alpha3(value) is None


@pytest.mark.parametrize("value", ["Atlantis", "ZZ", "QQQ", "???", "火星", 3.5, True, 0])
def test_unknown_country_raises(value):
    with pytest.raises(InvalidValue, match="^unknown country$"):
        to_alpha3(value)


def test_every_iso_country_maps_by_code_and_name():
    for country in pycountry.countries:
        assert to_alpha3(country.alpha_2) == country.alpha_3
        assert to_alpha3(country.alpha_3) == country.alpha_3
        assert to_alpha3(country.name) == country.alpha_3


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(), st.text(alphabet=st.sampled_from(list("美国中香港UKSAde. ,")), max_size=6),
                 st.integers(), st.floats(), st.none()))
def test_only_raises_invalid_value_and_is_idempotent(value):
    try:
        code = to_alpha3(value)
    except InvalidValue:
        return
    if code is not None:
        assert len(code) == 3 and code.isupper()
        assert to_alpha3(code) == code


@pytest.mark.parametrize(("value", "expected"), [
    ("Taiwan, China", "TWN"), ("Chinese Taipei", "TWN"), ("Hong Kong, China", "HKG"), ("俄罗斯联邦", "RUS"),
])
def test_official_and_regional_forms_seen_in_exports(value, expected):
    assert to_alpha3(value) == expected
