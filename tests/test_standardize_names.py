"""Names: splitting, transliteration, name keys and phonetic keys."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from linkage.standardize.names import (
    NAME_FIELDS,
    clean_latin,
    has_han,
    hanzi_to_pinyin,
    join_pinyin,
    name_key,
    phonetic_key,
    split_full_name,
    standardize_name,
)

# Text that mixes ASCII, Latin with diacritics, Han, full-width forms, Cyrillic and controls.
NAME_CHARS = st.sampled_from(
    list("abcXYZ -.,'·") + list("éüßøŁ") + list("张小明欧阳单曾") + list("ＺＨＡＮＧ　，") + list("Иван")
    + ["\x00", "\t", "\u200b", "\u0301"]
)
NAME_TEXT = st.one_of(st.text(), st.text(alphabet=NAME_CHARS, max_size=20))
ORDER = st.sampled_from(["family_first", "given_first", "auto"])


def std(full=None, family=None, given=None, local=None, order="auto"):
    return standardize_name(full, family, given, local, order)


# ---- literal examples --------------------------------------------------------------------

SAME_PERSON_ZHANG = [
    ("ZHANG XIAOMING", "auto"),
    ("XIAOMING ZHANG", "auto"),
    ("Xiao Ming ZHANG", "auto"),
    ("Xiao Ming Zhang", "auto"),
    ("张小明", "auto"),
    ("Zhang, Xiao-Ming", "auto"),
    ("ZHANG XIAO MING", "family_first"),
    ("Xiao-Ming Zhang", "given_first"),
    ("张 小明", "given_first"),
    ("ＺＨＡＮＧ　ＸＩＡＯＭＩＮＧ", "auto"),
]


@pytest.mark.parametrize(("full", "order"), SAME_PERSON_ZHANG)
def test_zhang_xiaoming_spellings_agree(full, order):
    result = std(full, order=order)
    assert result["family"] == "ZHANG"
    assert result["given"] == "XIAOMING"
    assert result["key"] == "MING XIAO ZHANG"


def test_output_has_exactly_the_name_fields():
    assert tuple(std("Wei ZHANG")) == NAME_FIELDS
    assert std() == dict.fromkeys(NAME_FIELDS)


@pytest.mark.parametrize(
    ("full", "order", "family", "given"),
    [
        ("José Müller", "given_first", "MULLER", "JOSE"),
        ("JOHN PAUL SMITH", "given_first", "SMITH", "JOHN PAUL"),
        ("SMITH JOHN PAUL", "family_first", "SMITH", "JOHN PAUL"),
        ("Smith, John", "auto", "SMITH", "JOHN"),
        ("ZHANG, WEI", "auto", "ZHANG", "WEI"),
        ("Wei ZHANG", "auto", "ZHANG", "WEI"),
        ("SMITH John", "auto", "SMITH", "JOHN"),
        ("John Smith", "auto", "SMITH", "JOHN"),
        ("WANG LI NA", "auto", "WANG", "LINA"),
        ("Li Na Wang", "given_first", "WANG", "LINA"),
        ("O'Brien, Seán", "auto", "OBRIEN", "SEAN"),
        ("Anne-Marie Dupont", "given_first", "DUPONT", "ANNE MARIE"),
        ("J. R. R. Tolkien", "given_first", "TOLKIEN", "J R R"),
        ("Ludwig van Beethoven", "given_first", "VAN BEETHOVEN", "LUDWIG"),
        ("NGUYEN VAN AN", "auto", "NGUYEN", "VAN AN"),
        ("OUYANG NANA", "auto", "OUYANG", "NANA"),
        ("Nana Ou-Yang", "given_first", "OUYANG", "NANA"),
        ("CHAN Tai Man", "auto", "CHAN", "TAIMAN"),
        ("Łukasz Żółć", "given_first", "ZOLC", "LUKASZ"),
        ("Straße Jürgen", "family_first", "STRASSE", "JURGEN"),
        ("Madonna", "auto", "MADONNA", None),
    ],
)
def test_latin_full_names(full, order, family, given):
    result = std(full, order=order)
    assert (result["family"], result["given"]) == (family, given)
    assert result["script"] == "latin"
    assert result["local"] is None


@pytest.mark.parametrize(
    ("hanzi", "family", "given"),
    [
        ("张小明", "ZHANG", "XIAOMING"),
        ("欧阳娜娜", "OUYANG", "NANA"),
        ("司马光", "SIMA", "GUANG"),
        ("诸葛亮", "ZHUGE", "LIANG"),
        ("上官婉儿", "SHANGGUAN", "WANER"),
        ("东方明珠", "DONGFANG", "MINGZHU"),
        ("皇甫嵩", "HUANGFU", "SONG"),
        ("尉迟恭", "YUCHI", "GONG"),
        ("公孙胜", "GONGSUN", "SHENG"),
        ("慕容复", "MURONG", "FU"),
        ("令狐冲", "LINGHU", "CHONG"),
        ("夏侯惇", "XIAHOU", "DUN"),
        ("长孙无忌", "ZHANGSUN", "WUJI"),
        ("宇文泰", "YUWEN", "TAI"),
        ("司徒雷登", "SITU", "LEIDENG"),
        ("端木蓉", "DUANMU", "RONG"),
        ("单田芳", "SHAN", "TIANFANG"),
        ("曾国藩", "ZENG", "GUOFAN"),
        ("解缙", "XIE", "JIN"),
        ("区志伟", "OU", "ZHIWEI"),
        ("仇英", "QIU", "YING"),
        ("朴志勇", "PIAO", "ZHIYONG"),
        ("吕小明", "LYU", "XIAOMING"),
        ("歐陽震華", "OUYANG", "ZHENHUA"),
        ("王", "WANG", None),
    ],
)
def test_hanzi_names(hanzi, family, given):
    result = std(hanzi)
    assert (result["family"], result["given"]) == (family, given)
    assert result["local"] == hanzi
    assert result["script"] == "han"


def test_transliterated_foreign_name_in_hanzi_is_given_first():
    result = std("约翰·史密斯")
    assert (result["family"], result["given"], result["local"]) == ("SHIMISI", "YUEHAN", "约翰史密斯")


def test_hanzi_family_and_given_columns():
    result = std(family="欧阳", given="娜娜")
    assert (result["family"], result["given"], result["local"]) == ("OUYANG", "NANA", "欧阳娜娜")
    assert std(family="单", given="田芳")["family"] == "SHAN"


def test_columns_win_over_full_name_and_order():
    for order in ("family_first", "given_first", "auto"):
        result = std("whatever text", "Zhang", "Xiao Ming", None, order)
        assert (result["family"], result["given"]) == ("ZHANG", "XIAOMING")


def test_local_name_is_kept_and_used_when_nothing_else():
    result = std("ZHANG XIAOMING", local="张 小明")
    assert (result["family"], result["local"], result["script"]) == ("ZHANG", "张小明", "latin")
    only_local = std(local="张小明")
    assert (only_local["family"], only_local["given"], only_local["script"]) == ("ZHANG", "XIAOMING", "han")


def test_local_name_tells_the_family_name_in_auto_order():
    assert std("MING ZHANG", local="明张")["family"] == "MING"
    assert std("MING ZHANG")["family"] == "ZHANG"


@pytest.mark.parametrize(
    ("full", "family", "given"),
    [("张小明 ZHANG XIAOMING", "ZHANG", "XIAOMING"), ("张 Xiaoming", "ZHANG", "XIAOMING")],
)
def test_mixed_script_full_names(full, family, given):
    result = std(full)
    assert (result["family"], result["given"], result["script"]) == (family, given, "mixed")
    assert has_han(result["local"])


def test_other_scripts_are_transliterated_where_possible():
    cyrillic = std("ИВАНОВ Иван")
    assert (cyrillic["family"], cyrillic["given"], cyrillic["script"]) == ("IVANOV", "IVAN", "other")
    arabic = std("محمد علي")
    assert arabic["script"] == "other"
    assert arabic["key"] == "علي محمد"


@pytest.mark.parametrize("empty", [None, "", "   ", "123", "-- ,", "\t"])
def test_no_name_gives_all_none(empty):
    assert std(empty, empty, empty, empty) == dict.fromkeys(NAME_FIELDS)


def test_bad_order_is_a_config_error():
    with pytest.raises(ValueError):
        std("A B", order="sideways")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("JOHN PAUL SMITH", "given_first"), ("SMITH JOHN PAUL", "family_first")),
        (("Xiao Ming ZHANG", "auto"), ("张小明", "auto")),
        (("Müller, José", "auto"), ("JOSE MULLER", "given_first")),
        (("Nana OUYANG", "auto"), ("欧阳娜娜", "auto")),
    ],
)
def test_name_key_is_order_script_and_spacing_independent(a, b):
    assert std(a[0], order=a[1])["key"] == std(b[0], order=b[1])["key"]


def test_name_key_definition():
    assert name_key("ZHANG", "XIAO MING") == name_key("ZHANG", "XIAOMING") == "MING XIAO ZHANG"
    assert name_key("SMITH", "JOHN PAUL") == "JOHN PAUL SMITH"
    assert name_key(None, None) is None


@pytest.mark.parametrize(
    "variants",
    [
        ["Mohammed", "Muhammad", "Mohamed", "Mohammad", "Muhammed", "Mohd"],
        ["Yusuf", "Yousef", "Youssef"],
        ["Aleksandr", "Alexander"],
        ["Sergei", "Sergey", "Serguei"],
        ["Ekaterina", "Yekaterina"],
        ["Nguyen", "Nguyễn"],
        ["Hsiao-Ming", "Xiaoming", "Xiao Ming"],
    ],
)
def test_given_name_variants_share_a_phonetic_key(variants):
    keys = {std(family="X", given=v)["given_phonetic"] for v in variants}
    assert len(keys) == 1


@pytest.mark.parametrize(
    "variants",
    [
        ["Zhang", "Chang", "Cheung", "张"],
        ["Hsu", "Xu", "徐"],
        ["Wong", "Huang", "黄"],
        ["Lee", "Li", "李"],
        ["Tsai", "Cai", "蔡"],
        ["Chou", "Zhou", "周"],
        ["Nguyen", "Nguyễn"],
        ["Mohammed", "Muhammad"],
    ],
)
def test_family_name_variants_share_a_phonetic_key(variants):
    keys = {std(family=v, given="A")["family_phonetic"] for v in variants}
    assert len(keys) == 1


def test_phonetic_keys_tell_different_names_apart():
    assert phonetic_key("SMITH") != phonetic_key("JONES")
    assert std(family="Zhang")["family_phonetic"] != std(family="Wang")["family_phonetic"]


# ---- helpers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("José Müller", "JOSE MULLER"),
        ("  o'neil-smith ", "ONEIL SMITH"),
        ("Zhang,Wei", "ZHANG WEI"),
        ("约翰·Smith", "约翰 SMITH"),
        ("ＡＢＣ", "ABC"),
        ("Ærøskøbing", "AEROSKOBING"),
        ("", None),
        ("...", None),
    ],
)
def test_clean_latin(text, expected):
    assert clean_latin(text) == expected


def test_pinyin_helpers():
    assert hanzi_to_pinyin("张小明") == ["ZHANG", "XIAO", "MING"]
    assert hanzi_to_pinyin("单", surname=True) == ["SHAN"]
    assert hanzi_to_pinyin("abc") == []
    assert join_pinyin(["XIAO", "MING"]) == ["XIAOMING"]
    assert join_pinyin(["JOHN", "PAUL"]) == ["JOHN", "PAUL"]
    assert join_pinyin(["XIAOMING"]) == ["XIAOMING"]
    assert has_han("abc张") and not has_han("abc") and not has_han(None)


def test_split_full_name_returns_raw_parts():
    assert split_full_name("Smith, John", "given_first") == ("Smith", "John")
    assert split_full_name("Wei ZHANG", "auto") == ("ZHANG", "Wei")


# ---- properties --------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(NAME_TEXT, NAME_TEXT, NAME_TEXT, NAME_TEXT, ORDER)
def test_standardize_name_never_raises_and_has_the_fields(full, family, given_, local, order):
    result = standardize_name(full, family, given_, local, order)
    assert tuple(result) == NAME_FIELDS
    assert result["script"] in (None, "han", "latin", "mixed", "other")
    if result["script"] in ("han", "latin"):
        for field in ("family", "given", "key"):
            assert result[field] is None or (result[field].isascii() and result[field] == result[field].upper())


@settings(max_examples=300, deadline=None)
@given(NAME_TEXT, NAME_TEXT, NAME_TEXT, ORDER)
def test_name_key_is_stable_on_its_own_output(full, family, given_, order):
    first = standardize_name(full, family, given_, None, order)
    again = standardize_name(None, first["family"], first["given"], None, order)
    assert again["key"] == first["key"]
    assert (again["family"], again["given"]) == (first["family"], first["given"])
    assert again["family_phonetic"] == first["family_phonetic"]
    assert again["given_phonetic"] == first["given_phonetic"]


@settings(max_examples=300, deadline=None)
@given(NAME_TEXT)
def test_clean_latin_is_idempotent(text):
    once = clean_latin(text)
    assert clean_latin(once) == once


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["ZHANG", "XIAO", "MING", "LI", "NA", "WEI", "OUYANG", "JIAN", "GUO"]), min_size=2, max_size=4))
def test_pinyin_spacing_does_not_change_the_given_name(syllables):
    spaced = std(family="WANG", given=" ".join(syllables))
    joined = std(family="WANG", given="".join(syllables))
    hyphened = std(family="WANG", given="-".join(syllables).title())
    assert spaced["key"] == hyphened["key"]
    if all(s not in ("OUYANG",) for s in syllables):
        assert spaced["given"] == joined["given"] == "".join(syllables)


def test_key_ignores_pinyin_spacing_and_which_word_was_read_as_family():
    forms = [("LI YAN JUAN", "given_first"), ("YANJUAN LI", "given_first"), ("LIYAN JUAN", "given_first"),
             ("李燕娟", "auto"), ("MINFAN", "auto")]
    keys = [std(text, order=order)["key"] for text, order in forms]
    assert keys[:4] == ["JUAN LI YAN"] * 4
    assert keys[4] == std("范敏", order="auto")["key"] == "FAN MIN"
