"""Person names: split, transliterate (hanzi -> pinyin, Latin diacritics, Cyrillic, Greek),
order-independent name keys and transliteration-aware phonetic keys.

Definitions used across the package:

* `family`, `given`: upper-case Latin, space-separated tokens. Hanzi becomes toneless pinyin
  (surname readings for surnames, 吕 -> LYU as in Chinese passports). Two or more tokens of a
  field that are each one pinyin syllable are joined ("XIAO MING" -> "XIAOMING").
* `key`: the tokens of family and given, sorted and joined by one space
  ("张小明", "Xiao Ming ZHANG", "Zhang, Xiao-Ming" -> "XIAOMING ZHANG").
* `family_phonetic`, `given_phonetic`: per token, a spelling-variant table (Wade-Giles and
  Cantonese surnames to pinyin, Arabic and Russian transliterations) and a few rules, then
  jellyfish metaphone; tokens in other scripts are kept as they are.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import jellyfish

__all__ = [
    "NAME_FIELDS",
    "ORDERS",
    "clean_latin",
    "has_han",
    "hanzi_to_pinyin",
    "is_pinyin_syllable",
    "join_pinyin",
    "name_key",
    "phonetic_key",
    "split_full_name",
    "standardize_name",
]

NAME_FIELDS = ("family", "given", "local", "script", "key", "family_phonetic", "given_phonetic")
ORDERS = ("family_first", "given_first", "auto")

# ---- data --------------------------------------------------------------------------------

# Toneless pinyin syllables (ü written v as pypinyin does, and yu as in passports).
PINYIN_SYLLABLES = frozenset("""
a ai an ang ao ba bai ban bang bao bei ben beng bi bian biang biao bie bin bing bo bu ca cai can
cang cao ce cen ceng cha chai chan chang chao che chen cheng chi chong chou chu chua chuai chuan
chuang chui chun chuo ci cong cou cu cuan cui cun cuo da dai dan dang dao de dei deng di dia dian
diao die ding diu dong dou du duan dui dun duo e ei en eng er fa fan fang fei fen feng fo fou fu
ga gai gan gang gao ge gei gen geng gong gou gu gua guai guan guang gui gun guo ha hai han hang
hao he hei hen heng hong hou hu hua huai huan huang hui hun huo ji jia jian jiang jiao jie jin
jing jiong jiu ju juan jue jun ka kai kan kang kao ke ken keng kong kou ku kua kuai kuan kuang
kui kun kuo la lai lan lang lao le lei leng li lia lian liang liao lie lin ling liu long lou lu
luan lun luo lv lve lyu lyue lue ma mai man mang mao me mei men meng mi mian miao mie min ming
miu mo mou mu na nai nan nang nao ne nei nen neng ni nian niang niao nie nin ning niu nong nou
nu nuan nuo nv nve nyu nyue nue o ou pa pai pan pang pao pei pen peng pi pian piao pie pin ping
po pou pu qi qia qian qiang qiao qie qin qing qiong qiu qu quan que qun ran rang rao re ren reng
ri rong rou ru rua ruan rui run ruo sa sai san sang sao se sen seng sha shai shan shang shao
she shei shen sheng shi shou shu shua shuai shuan shuang shui shun shuo si song sou su suan sui
sun suo ta tai tan tang tao te teng ti tian tiao tie ting tong tou tu tuan tui tun tuo wa wai
wan wang wei wen weng wo wu xi xia xian xiang xiao xie xin xing xiong xiu xu xuan xue xun ya yan
yang yao ye yi yin ying yo yong you yu yuan yue yun za zai zan zang zao ze zei zen zeng zha zhai
zhan zhang zhao zhe zhei zhen zheng zhi zhong zhou zhu zhua zhuai zhuan zhuang zhui zhun zhuo
zi zong zou zu zuan zui zun zuo
""".upper().split())

# Common Cantonese and Wade-Giles syllables: used only to decide that a name "looks Chinese".
ROMANIZED_SYLLABLES = frozenset("""
CHEUK CHEUNG CHIA CHIAO CHIEH CHIEN CHIH CHING CHIU CHOI CHUNG FAI FUNG HOI HSIANG HSIAO HSIEN
HSIN HSING HSIU HSU HSUEH HUNG JUNG KAM KEUNG KIN KIT KUANG KUEI KWAI KWAN KWOK KWONG LAP LEUNG
LO MUI NGA NGAI OI PUI SHING SHUK SIN SIU SUK SUM SZE TSAI TSANG TSE TSOI TSUN TSZ TUNG TZU WAH
WING WUN YAT YAU YEE YEUNG YIU YUK YUEN
""".split())

# Surnames of two or more characters (simplified and traditional) and their pinyin.
COMPOUND_SURNAMES: dict[str, str] = {
    "欧阳": "OUYANG", "歐陽": "OUYANG", "司马": "SIMA", "司馬": "SIMA", "诸葛": "ZHUGE",
    "諸葛": "ZHUGE", "上官": "SHANGGUAN", "东方": "DONGFANG", "東方": "DONGFANG",
    "皇甫": "HUANGFU", "尉迟": "YUCHI", "尉遲": "YUCHI", "公孙": "GONGSUN", "公孫": "GONGSUN",
    "慕容": "MURONG", "令狐": "LINGHU", "夏侯": "XIAHOU", "长孙": "ZHANGSUN", "長孫": "ZHANGSUN",
    "宇文": "YUWEN", "司徒": "SITU", "端木": "DUANMU", "万俟": "MOQI", "萬俟": "MOQI",
    "轩辕": "XUANYUAN", "軒轅": "XUANYUAN", "西门": "XIMEN", "西門": "XIMEN", "南宫": "NANGONG",
    "南宮": "NANGONG", "独孤": "DUGU", "獨孤": "DUGU", "闻人": "WENREN", "聞人": "WENREN",
    "申屠": "SHENTU", "公冶": "GONGYE", "澹台": "TANTAI", "太史": "TAISHI", "赫连": "HELIAN",
    "赫連": "HELIAN", "呼延": "HUYAN", "钟离": "ZHONGLI", "鍾離": "ZHONGLI", "百里": "BAILI",
    "东郭": "DONGGUO", "東郭": "DONGGUO", "司空": "SIKONG", "濮阳": "PUYANG", "濮陽": "PUYANG",
    "淳于": "CHUNYU", "单于": "CHANYU", "單于": "CHANYU", "拓跋": "TUOBA", "完颜": "WANYAN",
    "完顏": "WANYAN", "爱新觉罗": "AIXINJUELUO", "愛新覺羅": "AIXINJUELUO", "叶赫那拉": "YEHENALA",
    "葉赫那拉": "YEHENALA",
}

# Single-character surnames whose surname reading differs from (or is less certain than)
# the everyday reading that pypinyin picks.
SURNAME_READINGS: dict[str, str] = {
    "单": "SHAN", "單": "SHAN", "曾": "ZENG", "解": "XIE", "区": "OU", "區": "OU", "仇": "QIU",
    "朴": "PIAO", "查": "ZHA", "盖": "GE", "蓋": "GE", "乐": "YUE", "樂": "YUE", "缪": "MIAO",
    "繆": "MIAO", "覃": "QIN", "翟": "ZHAI", "秘": "BI", "召": "SHAO", "种": "CHONG",
    "種": "CHONG", "员": "YUN", "員": "YUN", "繁": "PO", "句": "GOU", "过": "GUO", "過": "GUO",
    "便": "PIAN", "车": "CHE", "車": "CHE", "沈": "SHEN", "贾": "JIA", "賈": "JIA", "柏": "BAI",
    "薄": "BO", "莘": "SHEN", "隗": "WEI", "尉": "WEI", "冼": "XIAN", "洗": "XIAN", "黑": "HE",
    "能": "NAI", "折": "SHE", "藏": "ZANG", "重": "CHONG", "朝": "CHAO", "长": "CHANG",
    "長": "CHANG", "华": "HUA", "華": "HUA", "任": "REN", "宁": "NING", "寧": "NING", "曲": "QU",
    "石": "SHI", "都": "DU", "殷": "YIN", "褚": "CHU", "那": "NA", "叶": "YE", "葉": "YE",
    "万": "WAN", "萬": "WAN", "应": "YING", "應": "YING", "乜": "NIE", "隽": "JUAN", "雋": "JUAN",
    "角": "JUE", "燕": "YAN", "粘": "NIAN", "阚": "KAN", "闞": "KAN", "郇": "HUAN", "鲜": "XIAN",
    "鮮": "XIAN", "啜": "CHUAI", "貟": "YUN", "伯": "BO", "吕": "LYU", "呂": "LYU",
}

# Common Chinese surnames in pinyin, most frequent first (ties are broken by this order).
COMMON_SURNAMES: tuple[str, ...] = tuple("""
WANG LI ZHANG LIU CHEN YANG HUANG ZHAO WU ZHOU XU SUN MA ZHU HU GUO HE LIN GAO LUO ZHENG LIANG
XIE SONG TANG HAN FENG DENG CAO PENG ZENG XIAO TIAN DONG PAN YUAN CAI JIANG YU DU YE CHENG WEI
SU LYU LV DING REN LU YAO SHEN ZHONG CUI TAN FAN LIAO SHI JIN JIA XIA FU FANG ZOU XIONG BAI
MENG QIN QIU HOU YIN XUE YAN DUAN LEI LONG TAO HAO GU MAO GONG SHAO WAN QIAN DAI MO KONG XIANG
CHANG KANG YI QIAO LAI WEN HONG XIN KE ZHUANG NIU SHAN GUAN QI ZHAN BAO MIAO OU PIAO ZHAI
OUYANG SIMA ZHUGE SHANGGUAN DONGFANG HUANGFU YUCHI GONGSUN MURONG LINGHU XIAHOU ZHANGSUN YUWEN
SITU DUANMU
""".split())

COMPOUND_SURNAMES_PINYIN = frozenset(
    ["OUYANG", "SIMA", "ZHUGE", "SHANGGUAN", "DONGFANG", "HUANGFU", "YUCHI", "GONGSUN", "MURONG",
     "LINGHU", "XIAHOU", "ZHANGSUN", "YUWEN", "SITU", "DUANMU", "XUANYUAN", "XIMEN", "NANGONG"]
)

# Surname spellings (Wade-Giles, Cantonese, Hokkien) -> pinyin. Applied to family names only,
# because several of them are also ordinary pinyin syllables of given names (TING, HUI, CHU).
SURNAME_VARIANTS: dict[str, str] = {
    "CHANG": "ZHANG", "CHEUNG": "ZHANG", "CHEONG": "ZHANG", "TEO": "ZHANG",
    "WONG": "HUANG", "NG": "WU", "GOH": "WU", "LEE": "LI",
    "HSU": "XU", "HUI": "XU", "KOH": "XU", "TSAI": "CAI", "CHOI": "CAI", "CHOY": "CAI",
    "CHUA": "CAI", "CHOU": "ZHOU", "CHOW": "ZHOU", "CHAU": "ZHOU", "CHAN": "CHEN",
    "LAU": "LIU", "YEUNG": "YANG", "YEO": "YANG", "CHAO": "ZHAO", "CHIU": "QIU",
    "SUEN": "SUN", "KUO": "GUO", "KWOK": "GUO", "HO": "HE", "LAM": "LIN", "LIM": "LIN",
    "LO": "LUO", "LAW": "LUO", "LOH": "LUO", "CHEANG": "ZHENG",
    "LEUNG": "LIANG", "HSIEH": "XIE", "TSE": "XIE", "CHEAH": "XIE", "SUNG": "SONG",
    "FUNG": "FENG", "TENG": "DENG", "TSAO": "CAO", "TSO": "CAO",
    "TSANG": "ZENG", "TSENG": "ZENG", "HSIAO": "XIAO", "SIU": "XIAO", "TIEN": "TIAN",
    "TUNG": "DONG", "POON": "PAN", "PUN": "PAN", "YUEN": "YUAN", "CHIANG": "JIANG",
    "KEUNG": "JIANG", "TO": "DU", "YEH": "YE", "YIP": "YE", "IP": "YE",
    "SO": "SU", "TING": "DING", "JEN": "REN", "YAM": "REN", "SHUM": "SHEN", "SHAM": "SHEN",
    "YIU": "YAO", "CHUNG": "ZHONG", "TSUI": "CUI", "CHIN": "JIN", "KAM": "JIN",
    "CHIEN": "QIAN", "KAO": "GAO", "KO": "GAO", "CHU": "ZHU", "CHOO": "ZHU", "KUNG": "KONG",
    "HUNG": "HONG", "HSIUNG": "XIONG", "SHIH": "SHI", "SZE": "SHI", "CHIA": "JIA",
    "HSIA": "XIA", "FONG": "FANG", "ONG": "WANG", "MAK": "MAI", "MOK": "MO",
    "KU": "GU", "KOO": "GU", "LUK": "LU", "TSIN": "QIN",
    "CHUANG": "ZHUANG", "LV": "LYU", "LUI": "LYU",
    "AU": "OU", "AU-YEUNG": "OUYANG", "AUYEUNG": "OUYANG", "SZETO": "SITU", "SEETO": "SITU",
    # Korean surnames are Sino-Korean: their romanizations map to the pinyin of the same character.
    "IM": "LIN", "RIM": "LIN", "YI": "LI", "RHEE": "LI", "RI": "LI", "KIM": "JIN", "GIM": "JIN",
    "PARK": "PIAO", "PAK": "PIAO", "BAK": "PIAO", "CHOE": "CAI", "CHWE": "CAI",
    "JEONG": "ZHONG", "JUNG": "ZHONG", "YOON": "YIN", "YUN": "YIN",
    "CHO": "ZHAO", "JO": "ZHAO", "SHIN": "SHEN", "SIN": "SHEN", "SEO": "XU", "SUH": "XU",
    "KWON": "QUAN", "GWON": "QUAN", "HWANG": "HUANG", "JANG": "ZHANG", "RYU": "LIU", "YOO": "LIU",
    "OH": "WU", "KANG": "JIANG", "GANG": "JIANG",
}

# Other spelling variants (Wade-Giles syllables of given names, Arabic and Russian
# transliterations) -> one spelling. Applied to every token before the phonetic code.
SPELLING_VARIANTS: dict[str, str] = {
    # Wade-Giles syllables that are not pinyin
    "HSIAO": "XIAO", "HSIN": "XIN", "HSIU": "XIU", "HSUEH": "XUE", "HSIANG": "XIANG",
    "HSIEN": "XIAN", "HSING": "XING", "HSIUNG": "XIONG", "HSI": "XI", "HSIA": "XIA",
    "HSU": "XU", "HSUAN": "XUAN", "HSUN": "XUN", "CHIH": "ZHI", "TZU": "ZI", "TSU": "ZU",
    "SSU": "SI", "SZU": "SI", "JUNG": "RONG", "KUANG": "GUANG", "KUEI": "GUI", "CHIEH": "JIE",
    "CHIAO": "JIAO", "CHIANG": "JIANG", "CHING": "JING", "CHIUNG": "JIONG", "CHUEH": "JUE",
    "TSAI": "CAI", "TSUNG": "ZONG", "TSENG": "ZENG", "TSANG": "ZANG",
    # Arabic
    "MOHD": "MUHAMMAD", "MUHD": "MUHAMMAD", "MHD": "MUHAMMAD", "MD": "MUHAMMAD",
    "MOHAMAD": "MUHAMMAD", "MOHAMMET": "MUHAMMAD", "MOUHAMED": "MUHAMMAD",
    "UMAR": "OMAR", "USAMA": "OSAMA", "USMAN": "OSMAN", "UTHMAN": "OSMAN", "OTHMAN": "OSMAN",
    "YOUSSOUF": "YUSUF", "YOUSOUF": "YUSUF", "EISA": "ISA", "ESSA": "ISA",
    # Russian
    "SERGUEI": "SERGEI", "SERGUEY": "SERGEI", "IOURI": "YURI", "YOURI": "YURI", "IOULIA": "YULIA",
    "ALEXEI": "ALEKSEI", "ALEXEY": "ALEKSEI", "ALEKSEY": "ALEKSEI", "MIKHAIL": "MIKHAIL",
    "MICHAIL": "MIKHAIL", "MIHAIL": "MIKHAIL",
}

# Common Vietnamese surnames: a full name starting with one is family-first ("NGUYEN VAN AN").
VIETNAMESE_SURNAMES = frozenset(
    "NGUYEN TRAN LE PHAM HOANG HUYNH PHAN VU VO DANG BUI DO HO NGO DUONG LY TRINH DINH".split()
)

# Name particles that belong with the family name when written in lower case ("Ludwig van Beethoven").
FAMILY_PARTICLES = frozenset(
    "VAN VON DE DA DI DEL DELLA DER DEN DOS DAS DU LA LE TER TEN BIN BINTI BINT IBN AL EL ABU".split()
)

# Latin letters without an ASCII decomposition.
_LATIN_SPECIAL = {
    "ß": "SS", "ẞ": "SS", "Æ": "AE", "æ": "AE", "Œ": "OE", "œ": "OE", "Ø": "O", "ø": "O",
    "Đ": "D", "đ": "D", "Ð": "D", "ð": "D", "Þ": "TH", "þ": "TH", "Ł": "L", "ł": "L", "Ħ": "H",
    "ħ": "H", "ı": "I", "Ə": "E", "ə": "E", "Ŋ": "NG", "ŋ": "NG", "ĸ": "K", "ſ": "S", "Ŧ": "T",
    "ŧ": "T", "Ɨ": "I", "ɨ": "I", "Ƶ": "Z", "ƶ": "Z",
}

# Cyrillic (ICAO Doc 9303) and Greek letters to Latin, upper case.
_CYRILLIC = dict(zip(
    "АБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯІЇЄҐЎ",
    "A B V G D E E ZH Z I I K L M N O P R S T U F KH TS CH SH SHCH IE Y - E IU IA I I IE G U".split(),
    strict=True,
))
_GREEK = dict(zip(
    "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩ",
    "A V G D E Z I TH I K L M N X O P R S T Y F CH PS O".split(),
    strict=True,
))

_APOSTROPHES = frozenset("'’‘`´ʼʹ′")
_COMMAS = ",，、;；"
_DOTS = "·•・‧.．"
_COMMA = re.compile(f"[{_COMMAS}]")
_TOKEN_BREAKS = re.compile(f"[\\s{_COMMAS}{_DOTS}]+")
_DOTS_OR_SPACES = re.compile(f"[{_DOTS}\\s]+")
_HAN = re.compile(
    "[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002ebef\U00030000-\U0003134f]"
)

# ---- scripts and Latin cleaning ----------------------------------------------------------


def has_han(text: str | None) -> bool:
    """True when the text contains at least one Han character."""
    return bool(text) and _HAN.search(text) is not None


def _letter_script(ch: str) -> str | None:
    if not ch.isalpha():
        return None
    if _HAN.match(ch):
        return "han"
    if ch.isascii() or unicodedata.name(ch, "").startswith("LATIN"):
        return "latin"
    return "other"


@lru_cache(maxsize=1 << 18)
def _scripts(text: str) -> frozenset[str]:
    """The scripts of the letters in one text."""
    if text.isascii():
        return _LATIN_ONLY if any(ch.isalpha() for ch in text) else frozenset()
    return frozenset(s for ch in text if (s := _letter_script(ch)))


_LATIN_ONLY = frozenset({"latin"})


def _script_of(texts: list[str]) -> str | None:
    scripts = _scripts(texts[0]) if len(texts) == 1 else frozenset().union(*map(_scripts, texts))
    if not scripts:
        return None
    return next(iter(scripts)) if len(scripts) == 1 else "mixed"


def _transliterate_char(ch: str) -> str | None:
    """ASCII upper-case letters for a Latin/Cyrillic/Greek letter; None for other characters."""
    if ch in _LATIN_SPECIAL:
        return _LATIN_SPECIAL[ch]
    upper = ch.upper()
    if upper in _CYRILLIC:
        return _CYRILLIC[upper].replace("-", "")
    if upper in _GREEK:
        return _GREEK[upper]
    if unicodedata.name(ch, "").startswith("LATIN"):
        base = unicodedata.normalize("NFKD", ch)
        return "".join(c for c in base if c.isascii() and c.isalpha()).upper()
    return None


@lru_cache(maxsize=1 << 18)
def _clean_once(text: str) -> str:
    out: list[str] = []
    for ch in unicodedata.normalize("NFKC", text):
        if ch in _APOSTROPHES:
            continue
        if ch.isascii():
            out.append(ch.upper() if ch.isalpha() else " ")
        elif unicodedata.category(ch)[0] == "M":
            if out and not out[-1].isascii():
                out.append(ch)
        elif (latin := _transliterate_char(ch)) is not None:
            out.append(latin)
        elif ch.isalpha():
            out.append(ch.upper())
        else:
            out.append(" ")
    return " ".join(unicodedata.normalize("NFKC", "".join(out)).split())


@lru_cache(maxsize=1 << 18)
def clean_latin(text: str | None) -> str | None:
    """Upper-case, ASCII-transliterated name text with single spaces; None when no letters.

    NFKC; diacritics stripped (JOSÉ -> JOSE); Cyrillic and Greek transliterated; apostrophes
    dropped (O'BRIEN -> OBRIEN); other punctuation, hyphens and digits become spaces.
    Letters of other scripts are kept (upper-cased). Idempotent.
    """
    if not text:
        return None
    cleaned = _clean_once(text)
    for _ in range(3):
        again = _clean_once(cleaned)
        if again == cleaned:
            break
        cleaned = again
    return cleaned or None


# ---- pinyin ------------------------------------------------------------------------------


def is_pinyin_syllable(token: str) -> bool:
    """True for one toneless pinyin syllable in upper case ("XIAO", "LYU")."""
    return token in PINYIN_SYLLABLES


@lru_cache(maxsize=1 << 18)
def _is_pinyin_word(token: str) -> bool:
    """True when the token splits into pinyin syllables ("XIAOMING" -> XIAO + MING)."""
    reachable = [True] + [False] * len(token)
    for end in range(1, len(token) + 1):
        reachable[end] = any(
            reachable[start] and token[start:end] in PINYIN_SYLLABLES
            for start in range(max(0, end - 6), end)
        )
    return bool(token) and reachable[-1]


def join_pinyin(tokens: list[str]) -> list[str]:
    """Join two or more tokens into one when each is a single pinyin syllable."""
    if len(tokens) >= 2 and all(is_pinyin_syllable(t) for t in tokens):
        return ["".join(tokens)]
    return tokens


def _syllable(pinyin: str) -> str:
    """pypinyin's toneless syllable in upper case, ü written YU after L/N (LV -> LYU)."""
    return re.sub(r"^([LN])V", r"\1YU", pinyin.upper())


def hanzi_to_pinyin(text: str, surname: bool = False) -> list[str]:
    """Toneless upper-case pinyin syllables of the Han characters in `text` (others dropped).

    With surname=True the text is read as a family name: compound surnames (欧阳 -> OUYANG,
    one item) and surname readings of polyphonic characters (单 -> SHAN, 曾 -> ZENG).
    """
    han = "".join(_HAN.findall(text))
    if not han:
        return []
    if surname:
        if han in COMPOUND_SURNAMES:
            return [COMPOUND_SURNAMES[han]]
        if han[0] in SURNAME_READINGS:
            return [SURNAME_READINGS[han[0]], *hanzi_to_pinyin(han[1:])]
    return list(_pinyin_of(han))


@lru_cache(maxsize=1 << 18)
def _pinyin_of(han: str) -> tuple[str, ...]:
    from pypinyin import Style, lazy_pinyin   # here, not at the top: its dictionaries take 0.25 s to load

    readings = lazy_pinyin(han, style=Style.NORMAL, errors="ignore", strict=True)
    return tuple(_syllable(r) for r in readings if r.isascii() and r.isalpha())


def _split_han(han: str) -> tuple[str, str]:
    """Split a Chinese name written in hanzi into (family, given) hanzi."""
    if len(han) >= 3:
        for size in (4, 2):
            if len(han) > size and han[:size] in COMPOUND_SURNAMES:
                return han[:size], han[size:]
    return han[:1], han[1:]


def _han_name(text: str) -> tuple[str | None, str | None]:
    """(family, given) pinyin of a hanzi name; "约翰·史密斯" (dotted) is given-first."""
    parts = [p for p in _DOTS_OR_SPACES.split(text) if _HAN.search(p)]
    if len(parts) >= 2 and any(d in text for d in _DOTS):
        given = " ".join("".join(hanzi_to_pinyin(p)) for p in parts[:-1])
        return "".join(hanzi_to_pinyin(parts[-1])) or None, given or None
    family, given = _split_han("".join(_HAN.findall(text)))
    return "".join(hanzi_to_pinyin(family, surname=True)) or None, "".join(hanzi_to_pinyin(given)) or None


def _local_form(text: str | None) -> str | None:
    """The hanzi name as written: NFKC, spaces and middle dots removed."""
    if not has_han(text):
        return None
    normalized = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in normalized if not ch.isspace() and ch not in _DOTS) or None


# ---- splitting a full name ---------------------------------------------------------------


def _surname_rank(token: str) -> int | None:
    canonical = SURNAME_VARIANTS.get(token, token)
    if canonical in COMMON_SURNAMES:
        return COMMON_SURNAMES.index(canonical)
    return None


def _looks_chinese(token: str) -> bool:
    cleaned = clean_latin(token) or ""
    return all(
        _is_pinyin_word(t) or t in ROMANIZED_SYLLABLES or t in SURNAME_VARIANTS for t in cleaned.split()
    ) and bool(cleaned)


@lru_cache(maxsize=1 << 16)
def _is_caps(token: str) -> bool:
    cased = [ch for ch in token if ch.isalpha() and (ch.isupper() or ch.islower())]
    return len(cased) >= 2 and all(ch.isupper() for ch in cased)


@lru_cache(maxsize=1 << 16)
def _has_lower(token: str) -> bool:
    return any(ch.islower() for ch in token)


def _token_key(token: str) -> str:
    return "".join((clean_latin(token) or "").split())


def _family_span_start(tokens: list[str]) -> int:
    """Index where the family name starts in a given-first token list (particles included)."""
    start = len(tokens) - 1
    if start >= 2 and _token_key(tokens[start - 1]) + _token_key(tokens[start]) in COMPOUND_SURNAMES_PINYIN:
        start -= 1
    while start > 1 and _is_particle(tokens[start - 1]):
        start -= 1
    return start


def _family_span_end(tokens: list[str]) -> int:
    """Index just after the family name in a family-first token list (particles included)."""
    if len(tokens) >= 3 and _token_key(tokens[0]) + _token_key(tokens[1]) in COMPOUND_SURNAMES_PINYIN:
        return 2
    end = 1
    while end < len(tokens) - 1 and _is_particle(tokens[end - 1]):
        end += 1
    return end


def _is_particle(token: str) -> bool:
    """A family-name particle written in lower case ("van", "de", "bin")."""
    return token.islower() and _token_key(token) in FAMILY_PARTICLES


def _family_first(tokens: list[str]) -> tuple[str, str]:
    end = _family_span_end(tokens)
    return " ".join(tokens[:end]), " ".join(tokens[end:])


def _given_first(tokens: list[str]) -> tuple[str, str]:
    start = _family_span_start(tokens)
    return " ".join(tokens[start:]), " ".join(tokens[:start])


def _auto_order(tokens: list[str], local_family: str | None) -> str:
    """Decide "family_first" or "given_first" for one full name written in Latin letters."""
    keys = [_token_key(t) for t in tokens]
    if local_family and keys[0] == local_family:
        return "family_first"
    if local_family and keys[-1] == local_family:
        return "given_first"
    if keys[0] in VIETNAMESE_SURNAMES and keys[-1] not in VIETNAMESE_SURNAMES:
        return "family_first"
    first_rank = _surname_rank(keys[0])
    if keys[0] + keys[1] in COMPOUND_SURNAMES_PINYIN:
        first_rank = 0
    if first_rank is None or not all(_looks_chinese(t) for t in tokens[1:]):
        return "given_first"
    last_rank = _surname_rank(keys[-1])
    if len(tokens) >= 3 and last_rank is not None and last_rank < first_rank:
        return "given_first"
    return "family_first"


def _caps_split(tokens: list[str]) -> tuple[str, str] | None:
    """In mixed-case text, the tokens in ALL CAPS are the family name ("Wei ZHANG")."""
    is_caps = [_is_caps(t) for t in tokens]
    caps = [t for t, c in zip(tokens, is_caps) if c]
    rest = [t for t, c in zip(tokens, is_caps) if not c]
    if caps and any(_has_lower(t) for t in rest):
        return " ".join(caps), " ".join(rest)
    return None


def split_full_name(text: str, order: str, local_family: str | None = None) -> tuple[str, str]:
    """Split a Latin-script full name into raw (family, given) text.

    A comma always separates family (before) from given (after). `order` "auto" then uses,
    in turn: ALL-CAPS tokens in mixed-case text, the pinyin surname of the hanzi local name
    (`local_family`), a common Chinese surname first followed by pinyin, else given-first.
    """
    if order not in ORDERS:
        raise ValueError(f"name order must be one of {', '.join(ORDERS)}")
    text = unicodedata.normalize("NFKC", text)
    parts = _COMMA.split(text, maxsplit=1)
    if len(parts) == 2 and clean_latin(parts[0]) and clean_latin(parts[1]):
        return parts[0].strip(), parts[1].strip()
    tokens = [t for t in _TOKEN_BREAKS.split(text) if clean_latin(t)]
    if len(tokens) <= 1:
        return " ".join(tokens), ""
    if order == "auto":
        split = _caps_split(tokens)
        if split is not None:
            return split
        order = _auto_order(tokens, local_family)
    return _family_first(tokens) if order == "family_first" else _given_first(tokens)


# ---- keys --------------------------------------------------------------------------------


@lru_cache(maxsize=1 << 18)
def _field_tokens(text: str | None) -> tuple[str, ...]:
    cleaned = clean_latin(text)
    return tuple(join_pinyin(cleaned.split())) if cleaned else ()


def name_key(family: str | None, given: str | None) -> str | None:
    """The words of both names, pinyin words split into syllables, sorted and joined by one space.

    Splitting makes the key independent of how pinyin was spaced and which part was read as the
    family name: "LI YAN JUAN", "YANJUAN LI", "LIYAN JUAN" and 李燕娟 all give "JUAN LI YAN".
    """
    return " ".join(sorted(_key_syllables(family) + _key_syllables(given))) or None


@lru_cache(maxsize=1 << 18)
def _key_syllables(text: str | None) -> tuple[str, ...]:
    """The syllables one name field gives its name key."""
    return tuple(syllable for token in _field_tokens(text) for syllable in _syllables(token))


@lru_cache(maxsize=1 << 18)
def _syllables(token: str) -> tuple[str, ...]:
    """A pinyin word as its syllables (fewest syllables, longer first on ties); other words whole."""
    if not _is_pinyin_word(token):
        return (token,)
    best: list[tuple[str, ...] | None] = [()] + [None] * len(token)
    for end in range(1, len(token) + 1):
        options = [best[start] + (token[start:end],) for start in range(max(0, end - 6), end)
                   if best[start] is not None and token[start:end] in PINYIN_SYLLABLES]
        best[end] = min(options, key=len) if options else None
    return best[-1] or (token,)


def _variant_rules(token: str) -> str:
    token = SPELLING_VARIANTS.get(token, token)
    if re.match(r"YE[^AEIOUY].{2,}", token):
        token = token[1:]  # YEKATERINA -> EKATERINA, YEVGENY -> EVGENY
    if token.startswith(("IU", "IO")) and len(token) > 3:
        token = "Y" + token[1:] if token[1] == "U" else "YU" + token[2:]  # IURII -> YURII
    return token


@lru_cache(maxsize=1 << 18)
def phonetic_key(text: str | None, family: bool = False) -> str | None:
    """Transliteration-aware phonetic code of a cleaned name field (see module docstring)."""
    tokens = _field_tokens(text)
    if family:
        tokens = [SURNAME_VARIANTS.get(t, t) for t in tokens]
    tokens = join_pinyin([_variant_rules(t) for t in tokens])
    codes = [(jellyfish.metaphone(t) or t) if t.isascii() else t for t in tokens]
    return " ".join(codes) or None


# ---- the record-level entry point --------------------------------------------------------


def _text(value: object) -> str | None:
    if value is None:
        return None
    text = unicodedata.normalize("NFKC", value if isinstance(value, str) else str(value))
    return text if text.strip() else None


def _han_chars(*texts: str | None) -> str:
    return "".join("".join(_HAN.findall(text)) for text in texts if text)


def _from_columns(family: str | None, given: str | None) -> tuple[str | None, str | None]:
    def one(text: str | None, surname: bool) -> str | None:
        if text is None:
            return None
        if has_han(text) and not _has_latin(text):
            return "".join(hanzi_to_pinyin(text, surname=surname)) or None
        return _latin_with_han(text)

    return one(family, True), one(given, False)


def _has_latin(text: str) -> bool:
    return "latin" in _scripts(text)


def _latin_with_han(text: str) -> str:
    """Replace each run of hanzi by its pinyin (one token), keep the rest."""
    return _HAN.sub(lambda m: " " + "".join(hanzi_to_pinyin(m.group())) + " ", text)


def _from_mixed(text: str, order: str) -> tuple[str | None, str | None]:
    """A full name with hanzi and Latin letters, e.g. "张小明 ZHANG XIAOMING" or "张 Xiaoming".

    When the Latin part spells the pinyin of the hanzi, the hanzi name decides the split;
    otherwise each run of hanzi is replaced by its pinyin and the text split by `order`.
    """
    family, given = _han_name(text)
    latin = "".join((clean_latin(_HAN.sub(" ", text)) or "").split())
    if latin in {(family or "") + (given or ""), (given or "") + (family or "")}:
        return family, given
    family, given = split_full_name(_latin_with_han(text), order)
    return family or None, given or None


def _from_full_name(text: str, order: str, local: str | None) -> tuple[str | None, str | None]:
    if has_han(text):
        if _has_latin(text):
            return _from_mixed(text, order)
        return _han_name(text)
    local_family = _han_name(local)[0] if has_han(local) else None
    family, given = split_full_name(text, order, local_family)
    return family or None, given or None


def standardize_name(
    full_name: str | None,
    family_name: str | None,
    given_name: str | None,
    local_name: str | None,
    order: str,
) -> dict[str, str | None]:
    """Standardize one person's name columns into the NAME_FIELDS (see module docstring).

    family_name/given_name columns are used directly when either is present; otherwise the
    full name is split by `order` (family_first | given_first | auto); otherwise the local
    (hanzi) name is used. Never raises on text; a name without letters gives all None.
    """
    if order not in ORDERS:
        raise ValueError(f"name order must be one of {', '.join(ORDERS)}")
    full, fam, giv, local = (_text(v) for v in (full_name, family_name, given_name, local_name))
    if fam or giv:
        sources = [t for t in (fam, giv) if t]
        family, given = _from_columns(fam, giv)
    elif full:
        sources = [full]
        family, given = _from_full_name(full, order, local)
    elif local:
        sources = [local]
        family, given = _from_full_name(local, order, None)
    else:
        return dict.fromkeys(NAME_FIELDS)
    local_out = _local_form(local if has_han(local) else _han_chars(fam, giv) or _han_chars(full))
    family_tokens, given_tokens = _field_tokens(family), _field_tokens(given)
    if not family_tokens and not given_tokens:
        return dict.fromkeys(NAME_FIELDS) | {"local": local_out}
    family_out = " ".join(family_tokens) or None
    given_out = " ".join(given_tokens) or None
    return {
        "family": family_out,
        "given": given_out,
        "local": local_out,
        "script": _script_of(sources),
        "key": name_key(family_out, given_out),
        "family_phonetic": phonetic_key(family_out, family=True),
        "given_phonetic": phonetic_key(given_out),
    }
