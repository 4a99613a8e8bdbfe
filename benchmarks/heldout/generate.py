#!/usr/bin/env python3
"""Independent held-out generator of the four agencies' exports (immigration, health, police,
commerce) plus the truth: who is who (truth_entities.csv) and which chain flags a perfect linkage
would raise (truth_flags.csv).

Written from the description of the real exports and from the product contracts only (DESIGN.md,
README.md, configs/chain.toml); it imports nothing from `linkage`.

    python benchmarks/heldout/generate.py --people 10000 --seed 1 --out /tmp/heldout10k \
        [--as-of 2026-03-31T00:00]

Deterministic for a seed (one random.Random drives everything, in a fixed order).
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import random
import shutil
import sys
import time
import tomllib
import unicodedata
from collections import Counter, defaultdict
from pathlib import Path

import xlsxwriter

sys.path.insert(0, str(Path(__file__).resolve().parent))
import namedata as ND  # noqa: E402

HERE = Path(__file__).resolve().parent
DEFAULT_CHAIN = HERE.parent.parent / "configs" / "chain.toml"

# ------------------------------------------------------------------------------------------------
# Rates of every kind of mess (documented in README.md and copied into MANIFEST.md)
# ------------------------------------------------------------------------------------------------
POPULATION = {
    "traveler": 0.88, "employee_only": 0.07, "resident_only": 0.05,   # of --people
    "CHN": 0.55, "HKMT": 0.10, "FOREIGN": 0.35,                        # of travelers
    "HKG_of_HKMT": 0.55, "MAC_of_HKMT": 0.15, "TWN_of_HKMT": 0.30,
    "party_solo": 0.62, "party_couple": 0.12, "party_family": 0.16, "party_colleagues": 0.10,
    "twins_in_family_with_2plus_kids": 0.10,
    "employee_share_foreign_travelers": 0.30, "employee_share_hkmt_travelers": 0.35,
    "arrival_window_days": 42,
}
BREAKS = [  # (kind, share of travelers): each traveler gets at most one
    ("miss_arrival", 0.006), ("miss_registration", 0.010), ("miss_health_check", 0.010),
    ("miss_quarantine_record", 0.005), ("miss_checkin", 0.005), ("miss_release", 0.004),
    ("miss_handover", 0.015),
    ("late_registration", 0.012), ("late_health_check", 0.008), ("late_transfer", 0.010),
    ("late_checkin", 0.008), ("late_handover", 0.015),
    ("early_release", 0.015), ("wrong_district", 0.020),
    ("handover_before_release", 0.006), ("registration_before_arrival", 0.004),
]
RATES = {
    # names
    "cn_name_hanzi_in_health": 0.72, "hkmt_name_hanzi_in_health": 0.45, "hkmt_name_mainland_pinyin_in_health": 0.10,
    "hkmt_hanzi_traditional_in_health": 0.30,
    "latin_given_first_health_foreign": 0.60, "latin_given_first_health_chinese_pinyin": 0.30,
    "homophone_hanzi_health": 0.03, "homophone_hanzi_police": 0.02,
    "typo_latin_health": 0.025, "typo_latin_police": 0.025, "typo_latin_commerce": 0.01,
    "translit_variant_health": 0.15, "translit_variant_police": 0.12, "translit_variant_commerce": 0.08,
    "middle_name_kept_health": 0.50, "middle_name_kept_police": 0.60, "middle_name_kept_commerce": 0.85,
    "second_surname_kept_health": 0.60, "second_surname_kept_police": 0.80,
    "patronymic_in_police": 0.30, "patronymic_in_commerce": 0.50,
    "native_diacritics_commerce": 0.50, "native_diacritics_health": 0.05,
    "stray_space_name": 0.02, "fullwidth_latin_name_health": 0.005,
    "mrz_comma_form_immigration": 0.12, "commerce_surname_given_swapped": 0.03,
    # dates of birth
    "dob_missing_immigration": 0.005, "dob_missing_health_rich": 0.08, "dob_missing_police": 0.05,
    "dob_missing_commerce": 0.05,
    "dob_digit_typo_health": 0.01, "dob_digit_typo_police": 0.01, "dob_digit_typo_commerce": 0.005,
    "dob_day_month_swap_health": 0.01, "dob_day_month_swap_commerce": 0.015,
    "commerce_dob_excel_date_cell": 0.50, "commerce_dob_text_dmy": 0.35, "commerce_dob_excel_serial_number": 0.10,
    # phones
    "phone_invalid": 0.008, "phone_typo_valid": 0.008, "foreign_phone_without_country_code": 0.35,
    "family_member_uses_head_phone": 0.60, "fullwidth_phone_digits_health": 0.003,
    "employee_commerce_phone_is_old": 0.10,
    # nationality
    "nationality_icao_D_for_germany_immigration": 0.70,
    # documents
    "doc_typo_health": 0.01, "doc_typo_police": 0.01, "doc_typo_commerce": 0.005, "doc_letter_O_for_zero": 0.002,
    "id_lowercase_x": 0.30,
    "passport_reissued_foreign_employee": 0.10, "commerce_shows_old_passport_if_reissued": 0.70,
    "permanent_residence_card_foreign_employee": 0.15,
    "police_handover_with_old_passport_if_reissued": 0.10,
    # duplicates / thin records / extra records
    "dup_registration": 0.03, "dup_handover": 0.03, "dup_commerce": 0.02,
    "thin_health_check_record": 0.60, "thin_quarantine_record": 0.40,
    "in_quarantine_test_per_slot": 0.35, "hotel_change": 0.01, "police_temp_stay_after_handover": 0.05,
    # identity conflicts (data-entry errors that contradict)
    "identity_conflict": 0.002,
}

HEALTH_COLS = ["记录编号", "业务类型", "姓名", "性别", "出生日期", "国籍地区", "证件类型", "证件号码", "联系电话",
               "航班车次", "入境口岸", "业务时间", "转运时间", "入住时间", "解除隔离时间", "隔离酒店", "房间号",
               "目的地区", "备注"]
IMM_COLS = ["entry_id", "name_en", "name_cn", "gender", "birth_date", "nationality", "doc_type", "doc_no",
            "flight_train_no", "port", "entry_time", "visa_type"]
POLICE_COLS = ["登记编号", "登记类型", "中文姓名", "外文姓名", "性别", "出生日期", "国籍", "证件种类", "证件号码",
               "联系电话", "居住地址", "辖区", "派出所", "登记时间", "登记民警"]
COM_COLS = ["Reg No.", "Surname", "Given Names", "Chinese Name", "Sex", "Date of Birth", "Nationality",
            "Passport No.", "Permit / Residence Card No.", "Employer", "Work Address", "Home Address", "Mobile",
            "E-mail", "Registered On"]

HANDOVER_TYPE = "社区移交登记"
HEALTH_TIME_FMT = "%Y-%m-%d %H:%M"
HEALTH_TIME_FMT2 = "%Y/%m/%d %H:%M"
IMM_TIME_FMT = "%Y-%m-%d %H:%M:%S"
POLICE_TIME_FMT = "%Y%m%d%H%M%S"
MIN = dt.timedelta(minutes=1)


# ------------------------------------------------------------------------------------------------
# small helpers
# ------------------------------------------------------------------------------------------------
class Picker:
    """Weighted choice with precomputed cumulative weights."""

    def __init__(self, items, weights):
        self.items = list(items)
        self.cum = []
        s = 0.0
        for w in weights:
            s += w
            self.cum.append(s)

    def __call__(self, rng):
        return rng.choices(self.items, cum_weights=self.cum, k=1)[0]


class Tok:
    __slots__ = ("variants", "native")

    def __init__(self, spec: str):
        native = None
        if "=" in spec:
            spec, native = spec.split("=", 1)
        self.variants = spec.split("/")
        self.native = native

    @staticmethod
    def plain(s):
        t = Tok.__new__(Tok)
        t.variants = [s]
        t.native = None
        return t


def toks(spec: str) -> list[Tok]:
    return [Tok(s) for s in spec.split()]


FOREIGN_TABLES = {}
for _k, _t in ND.FOREIGN.items():
    FOREIGN_TABLES[_k] = dict(_t, fam=toks(_t["fam"]), M=toks(_t["M"]), F=toks(_t["F"]),
                              middle_M=toks(_t["middle_M"]) if "middle_M" in _t else None,
                              middle_F=toks(_t["middle_F"]) if "middle_F" in _t else None)
NAT_TABLE = {nat: key for nat, key, _ in ND.FOREIGN_NATS}
FOREIGN_NAT_PICK = Picker([n for n, _, _ in ND.FOREIGN_NATS], [w for _, _, w in ND.FOREIGN_NATS])
CN_SUR_PICK = Picker([(h, p) for h, p, _ in ND.CN_SURNAMES], [w for _, _, w in ND.CN_SURNAMES])
HK_SUR_PICK = Picker([x[:4] for x in ND.HK_SURNAMES], [x[4] for x in ND.HK_SURNAMES])
TW_SUR_PICK = Picker([x[:4] for x in ND.TW_SURNAMES], [x[4] for x in ND.TW_SURNAMES])
CN_COMMON = {s: Picker([(h, syl) for h, syl, sx, _ in ND.CN_COMMON_GIVEN if sx in (s, "U")],
                       [w for h, syl, sx, w in ND.CN_COMMON_GIVEN if sx in (s, "U")]) for s in "MF"}
DIST_PICK = Picker(range(len(ND.DISTRICTS)), ND.DISTRICT_WEIGHTS)
FULLWIDTH = {c: chr(ord(c) + 0xFEE0) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"}
FULLWIDTH[" "] = "\u3000"
ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
ID_CHECK = "10X98765432"


def id_check_char(first17: str) -> str:
    return ID_CHECK[sum(int(c) * w for c, w in zip(first17, ID_WEIGHTS)) % 11]


def valid_resident_id(s: str) -> bool:
    s = s.strip().upper()
    if len(s) != 18 or not s[:17].isdigit():
        return False
    try:
        dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    return id_check_char(s[:17]) == s[17]


def digits(rng, n):
    return "".join(rng.choice("0123456789") for _ in range(n))


def letters(rng, n, alphabet="ABCDEFGHJKLMNPRSTUVWXYZ"):
    return "".join(rng.choice(alphabet) for _ in range(n))


def increment_number(s: str) -> str:
    """The next document number of a batch (twins get consecutive passports)."""
    i = len(s)
    while i > 0 and s[i - 1].isdigit():
        i -= 1
    head, num = s[:i], s[i:]
    if not num:
        return s + "1"
    n = (int(num) + 1) % (10 ** len(num))
    return head + str(n).zfill(len(num))


def parse_duration(s: str) -> dt.timedelta:
    n, unit = int(s[:-1]), s[-1]
    return {"m": dt.timedelta(minutes=n), "h": dt.timedelta(hours=n), "d": dt.timedelta(days=n)}[unit]


def ymd_read(y, m, d):
    """The date a reader recovers from the written day/month/year: the date itself, or (as a
    careful reader would) the date with day and month swapped when only that is valid."""
    try:
        return dt.date(y, m, d)
    except ValueError:
        try:
            return dt.date(y, d, m)
        except ValueError:
            return None


# ------------------------------------------------------------------------------------------------
# Person
# ------------------------------------------------------------------------------------------------
class Person:
    __slots__ = (
        "pid", "kind", "group", "nat", "sex", "dob", "age",
        "hz_fam", "hz_giv", "hzt_fam", "hzt_giv", "lat_fam", "lat_giv", "patronymic", "pp_style",
        "eng", "alt_py", "py_fam_variants", "fam_base",
        "passport", "passport_old", "id_number", "permit", "hk_passport", "prc",
        "cn_phone", "cn_phone_old", "home_phone", "health_phone", "police_phone",
        "email", "employer", "employee", "addr", "dest", "party", "head", "is_child",
        "flight", "port", "hotel", "room", "times", "brk", "ho_district", "hotel_change", "conflict",
        "visa",
    )

    def __init__(self):
        for s in self.__slots__:
            setattr(self, s, None)


def rand_dob(rng, as_of, lo_age, hi_age):
    start = dt.date(as_of.year - hi_age - 1, as_of.month, 1)
    end = dt.date(as_of.year - lo_age, as_of.month, 1)
    return start + dt.timedelta(days=rng.randrange((end - start).days))


def feminize(tok: Tok, table) -> Tok:
    if table.get("fem_suffix"):
        t = Tok.__new__(Tok)
        t.variants = [v + table["fem_suffix"] for v in tok.variants]
        t.native = None
        return t
    if table.get("polish_fem"):
        def f(v):
            return v[:-1] + "A" if v.endswith("SKI") else v
        t = Tok.__new__(Tok)
        t.variants = [f(v) for v in tok.variants]
        t.native = tok.native[:-1] + "a" if tok.native and tok.native.endswith("ki") else tok.native
        return t
    return tok


def cn_mobile(rng):
    return rng.choice(ND.CN_MOBILE_PREFIXES) + digits(rng, 8)


def foreign_mobile(rng, nat):
    cc, prefixes, n, trunk = ND.PHONE_PLANS[nat]
    return (cc, rng.choice(prefixes) + digits(rng, n), trunk)


def foreign_passport(rng, nat):
    if nat == "KOR":
        return "M" + digits(rng, 8)
    if nat == "JPN":
        return rng.choice(["TK", "TR", "MZ", "TZ", "TS"]) + digits(rng, 7)
    if nat == "DEU":
        return "C" + "".join(rng.choice("CFGHJKLMNPRTVWXYZ0123456789") for _ in range(8))
    if nat in ("USA", "GBR"):
        return rng.choice("56") + digits(rng, 8)
    if nat == "FRA":
        return digits(rng, 2) + letters(rng, 2) + digits(rng, 5)
    if nat == "RUS":
        return rng.choice(["75", "76", "77"]) + digits(rng, 7)
    if nat in ("IND", "VNM", "SAU"):
        return letters(rng, 1) + digits(rng, 7)
    if nat in ("PAK", "ITA", "POL", "THA"):
        return letters(rng, 2) + digits(rng, 7)
    if nat in ("EGY", "NGA", "ARE"):
        return "A" + digits(rng, 8)
    if nat == "BRA":
        return letters(rng, 2) + digits(rng, 6)
    if nat == "ESP":
        return letters(rng, 3) + digits(rng, 6)
    if nat == "TUR":
        return "U" + digits(rng, 8)
    if nat == "CAN":
        return letters(rng, 2) + digits(rng, 6)
    if nat == "AUS":
        return rng.choice(["PA", "PB", "N"]) + digits(rng, 7)
    return letters(rng, 1) + digits(rng, 8)


def cn_passport(rng):
    if rng.random() < 0.8:
        return "E" + digits(rng, 8)
    return "E" + rng.choice("ABCDEF") + digits(rng, 7)


def resident_id(rng, dob, sex, area=None):
    area = area or rng.choice(ND.CN_AREA_CODES)
    seq = rng.randrange(0, 500) * 2 + (1 if sex == "M" else 0)
    first = f"{area}{dob:%Y%m%d}{seq:03d}"
    return first + id_check_char(first)


def other_valid_id(rng, idn, sex):
    """A different valid resident ID with the same area and birth date (a mistyped sequence that
    happens to be re-checksummed by the clerk's software, or a relative's card)."""
    while True:
        seq = rng.randrange(0, 500) * 2 + (1 if sex == "M" else 0)
        first = idn[:14] + f"{seq:03d}"
        cand = first + id_check_char(first)
        if cand != idn:
            return cand


def make_person(ctx, group, nat, sex, dob, fam=None, fam_hz=None):
    """A person with names, documents and phones. `fam` (Latin toks) / `fam_hz` force a family name."""
    rng = ctx.rng
    p = Person()
    p.group, p.nat, p.sex, p.dob = group, nat, sex, dob
    p.age = (ctx.as_of.date() - dob).days // 365
    if group == "CHN":
        h, py = fam_hz or CN_SUR_PICK(rng)
        if rng.random() < 0.35:
            gh, syl = CN_COMMON[sex](rng)
        else:
            pool = ND.CN_CHARS_M if sex == "M" else ND.CN_CHARS_F
            n = 1 if rng.random() < 0.25 else 2
            chars = [rng.choice(pool) for _ in range(n)]
            gh, syl = "".join(c for c, _ in chars), [s for _, s in chars]
        p.hz_fam, p.hz_giv, p.hzt_fam, p.hzt_giv = h, gh, h, gh
        p.lat_fam = [Tok.plain(py.upper())]
        p.py_fam_variants = [v.capitalize() for v in ND.LYU_VARIANTS] if h == "吕" else None
        p.lat_giv = [(Tok.plain("-".join(syl).upper()), False)]
        p.pp_style = "joined"
        p.alt_py = None
        p.passport = cn_passport(rng)
        p.id_number = resident_id(rng, dob, sex)
        p.cn_phone = cn_mobile(rng)
    elif group in ("HKG", "MAC", "TWN"):
        tab_s = HK_SUR_PICK if group != "TWN" else TW_SUR_PICK
        given_tab = ND.HK_GIVEN if group != "TWN" else ND.TW_GIVEN
        ft, fs, from_, fpy = fam_hz or tab_s(rng)
        gt, gs, gsyl, gpy, _ = rng.choice([g for g in given_tab if g[4] == sex])
        p.hzt_fam, p.hzt_giv, p.hz_fam, p.hz_giv = ft, gt, fs, gs
        p.lat_fam = [Tok.plain(from_)]
        p.lat_giv = [(Tok.plain("-".join(gsyl)), False)]
        p.pp_style = "space" if group != "TWN" else "hyphen"
        p.alt_py = (fpy, gpy)
        if group == "HKG" and rng.random() < 0.45:
            p.eng = rng.choice(ND.HK_ENGLISH_M if sex == "M" else ND.HK_ENGLISH_F)
        if group == "HKG":
            p.permit = "H" + digits(rng, 8)
            if rng.random() < 0.6:
                p.hk_passport = "K" + digits(rng, 8)
        elif group == "MAC":
            p.permit = "M" + digits(rng, 8)
        else:
            p.permit = digits(rng, 8)
        p.home_phone = foreign_mobile(rng, group)
        if rng.random() < 0.5:
            p.cn_phone = cn_mobile(rng)
    else:
        key = NAT_TABLE[nat]
        tab = FOREIGN_TABLES[key]
        famtok = fam or [rng.choice(tab["fam"])]
        if fam is None and rng.random() < tab.get("second_surname_p", 0.0):
            famtok = famtok + [rng.choice(tab["fam"])]
        if sex == "F":
            famtok = [feminize(t, tab) for t in famtok]
        p.fam_base = famtok
        p.lat_fam = famtok
        g = rng.choice(tab[sex])
        giv = [(g, False)]
        if rng.random() < tab["middle_p"]:
            if tab.get(f"middle_{sex}"):
                m = rng.choice(tab[f"middle_{sex}"])
            elif tab.get("middle_from_male"):
                m = rng.choice(tab["M"])
            else:
                m = rng.choice(tab[sex])
            if m.variants[0] != g.variants[0]:
                if tab.get("middle_before_given"):
                    giv = [(m, True), (g, False)]
                else:
                    giv = [(g, False), (m, True)]
        p.lat_giv = giv
        if tab.get("patronymic"):
            base = rng.choice(ND.RUS_PATRONYMIC)
            p.patronymic = base + ("ICH" if sex == "M" else "NA")
        p.pp_style = rng.choice(["joined", "joined", "space", "hyphen"]) if nat == "KOR" else "space"
        p.passport = foreign_passport(rng, nat)
        p.home_phone = foreign_mobile(rng, nat)
        if rng.random() < 0.4:
            p.cn_phone = cn_mobile(rng)
    return p


# ------------------------------------------------------------------------------------------------
# rendering of names, dates, phones, countries, documents
# ------------------------------------------------------------------------------------------------
def syl_join(s: str, style: str) -> str:
    if "-" not in s:
        return s
    parts = s.split("-")
    if style == "joined":
        return "".join(parts)
    if style == "space":
        return " ".join(parts)
    if style == "camel":
        return "".join(x.capitalize() for x in parts)
    return "-".join(parts)


def case(s: str, mode: str) -> str:
    if mode == "upper":
        return s.upper()
    if mode == "lower":
        return s.lower()
    return s.title() if mode == "title" else s


def typo(rng, s: str) -> str:
    idx = [i for i, c in enumerate(s) if c.isalpha() and c.isascii()]
    if len(idx) < 4:
        return s
    i = rng.choice(idx[1:])
    op = rng.randrange(4)
    similar = {"e": "i", "i": "e", "a": "e", "o": "u", "u": "o", "y": "i", "c": "k", "k": "c", "s": "z", "z": "s",
               "m": "n", "n": "m", "t": "d", "d": "t"}
    c = s[i]
    if op == 0:
        out = s[:i] + s[i + 1:]
    elif op == 1:
        out = s[:i] + c + s[i:]
    elif op == 2 and i + 1 < len(s) and s[i + 1].isalpha():
        out = s[:i] + s[i + 1] + c + s[i + 2:]
    else:
        r = similar.get(c.lower(), "e" if c.lower() != "e" else "a")
        out = s[:i] + (r.upper() if c.isupper() else r) + s[i + 1:]
    return out if out != s else s[:i] + s[i + 1:]


def stray_spaces(rng, s: str) -> str:
    k = rng.randrange(3)
    if k == 0:
        return " " + s + " "
    if k == 1:
        return s.replace(" ", "  ", 1) if " " in s else s + " "
    return s + "\u3000"


def tok_text(ctx, tok: Tok, translit_p: float, native_p: float, style: str) -> str:
    rng = ctx.rng
    v = tok.variants[0]
    if len(tok.variants) > 1 and rng.random() < translit_p:
        v = rng.choice(tok.variants[1:])
        ctx.count["name_translit_variant"] += 1
    elif tok.native and rng.random() < native_p:
        v = tok.native.upper()
        ctx.count["name_native_diacritics"] += 1
    return syl_join(v, style)


def latin_parts(ctx, p, *, translit_p=0.0, native_p=0.0, middle_keep=1.0, second_keep=1.0,
                patronymic_p=0.0, style=None, eng_p=0.0):
    """(family, given) Latin strings in upper case."""
    rng = ctx.rng
    st = style or p.pp_style
    fam_toks = p.lat_fam
    if len(fam_toks) > 1 and rng.random() >= second_keep:
        fam_toks = fam_toks[:1]
        ctx.count["second_surname_dropped"] += 1
    if p.py_fam_variants and rng.random() < 0.5:
        fam = rng.choice(p.py_fam_variants).upper()
        ctx.count["name_translit_variant"] += 1
    else:
        fam = " ".join(tok_text(ctx, t, translit_p, native_p, "space") for t in fam_toks)
    giv = []
    for t, droppable in p.lat_giv:
        if droppable and rng.random() >= middle_keep:
            ctx.count["middle_name_dropped"] += 1
            continue
        giv.append(tok_text(ctx, t, translit_p, native_p, st))
    if p.patronymic and rng.random() < patronymic_p:
        giv.append(p.patronymic)
        ctx.count["patronymic_added"] += 1
    if p.eng and rng.random() < eng_p:
        if rng.random() < 0.3:
            giv = [p.eng]
        else:
            giv = [p.eng] + giv if rng.random() < 0.5 else giv + [p.eng]
        ctx.count["hk_english_name_used"] += 1
    return fam, " ".join(giv)


def mrz_ascii(s: str) -> str:
    rep = {"Ä": "AE", "Ö": "OE", "Ü": "UE", "ß": "SS"}
    out = []
    for c in s:
        if c in rep:
            out.append(rep[c])
            continue
        d = unicodedata.normalize("NFKD", c)
        out.append("".join(x for x in d if x.isascii()))
    return "".join(out).replace("'", "")


def hanzi_name(ctx, p, *, trad=False, homophone_p=0.0, space_p=0.0):
    rng = ctx.rng
    fam, giv = (p.hzt_fam, p.hzt_giv) if trad else (p.hz_fam, p.hz_giv)
    if homophone_p and rng.random() < homophone_p:
        pos = [i for i, c in enumerate(giv) if c in ND.HOMOPHONES]
        if pos:
            i = rng.choice(pos)
            giv = giv[:i] + rng.choice(ND.HOMOPHONES[giv[i]]) + giv[i + 1:]
            ctx.count["name_homophone_hanzi"] += 1
    s = fam + giv
    if space_p and rng.random() < space_p:
        s = rng.choice([fam + " " + giv, " " + s, s + " ", fam + "\u3000" + giv])
        ctx.count["name_stray_space"] += 1
    return s


def health_name(ctx, p) -> str:
    rng = ctx.rng
    R = RATES
    if p.group == "CHN" and rng.random() < R["cn_name_hanzi_in_health"]:
        return hanzi_name(ctx, p, homophone_p=R["homophone_hanzi_health"], space_p=R["stray_space_name"])
    if p.group in ("HKG", "MAC", "TWN"):
        r = rng.random()
        if r < R["hkmt_name_hanzi_in_health"]:
            trad = rng.random() < R["hkmt_hanzi_traditional_in_health"]
            return hanzi_name(ctx, p, trad=trad, homophone_p=0 if trad else R["homophone_hanzi_health"],
                              space_p=R["stray_space_name"])
        if r < R["hkmt_name_hanzi_in_health"] + R["hkmt_name_mainland_pinyin_in_health"]:
            fpy, gpy = p.alt_py
            ctx.count["hkmt_mainland_pinyin"] += 1
            fam, giv = fpy.capitalize(), "".join(gpy).capitalize()
            return f"{fam} {giv}" if rng.random() < 0.7 else f"{giv} {fam}"
    if p.group == "CHN":
        gf = rng.random() < R["latin_given_first_health_chinese_pinyin"]
        style = rng.choices(["joined", "space", "hyphen", "camel"], [50, 25, 15, 10])[0]
    elif p.group in ("HKG", "MAC", "TWN"):
        gf = rng.random() < 0.4
        style = rng.choices(["space", "hyphen", "joined"], [50, 30, 20])[0]
    else:
        gf = rng.random() < R["latin_given_first_health_foreign"]
        style = rng.choices(["joined", "space", "hyphen"], [40, 35, 25])[0]
    fam, giv = latin_parts(ctx, p, translit_p=R["translit_variant_health"], native_p=R["native_diacritics_health"],
                           middle_keep=R["middle_name_kept_health"], second_keep=R["second_surname_kept_health"],
                           style=style, eng_p=0.5)
    mode = rng.choices(["title", "upper", "lower", "mixed"], [50, 28, 12, 10])[0]
    if mode == "mixed":
        fam, giv = fam.upper(), giv.title()
    else:
        fam, giv = case(fam, mode), case(giv, mode)
    if gf:
        ctx.count["name_given_first"] += 1
    s = f"{giv} {fam}" if gf else f"{fam} {giv}"
    s = s.strip()
    if rng.random() < R["typo_latin_health"]:
        s = typo(rng, s)
        ctx.count["name_typo"] += 1
    if rng.random() < R["stray_space_name"]:
        s = stray_spaces(rng, s)
        ctx.count["name_stray_space"] += 1
    if rng.random() < R["fullwidth_latin_name_health"]:
        s = "".join(FULLWIDTH.get(c, c) for c in s)
        ctx.count["name_fullwidth"] += 1
    return s


def immigration_names(ctx, p):
    rng = ctx.rng
    fam, giv = latin_parts(ctx, p, style=p.pp_style)
    fam, giv = mrz_ascii(fam.upper()), mrz_ascii(giv.upper())
    if rng.random() < RATES["mrz_comma_form_immigration"]:
        en = f"{fam}, {giv}"
        ctx.count["name_mrz_comma"] += 1
    else:
        en = f"{fam} {giv}"
    cn = ""
    if p.group == "CHN" and rng.random() < 0.85:
        cn = p.hz_fam + p.hz_giv
    elif p.group in ("HKG", "MAC", "TWN") and rng.random() < 0.9:
        cn = (p.hzt_fam + p.hzt_giv) if rng.random() < 0.4 else (p.hz_fam + p.hz_giv)
    return en, cn


def police_names(ctx, p):
    rng = ctx.rng
    R = RATES
    if p.group == "CHN":
        cn = hanzi_name(ctx, p, homophone_p=R["homophone_hanzi_police"], space_p=0.01)
        en = ""
        if rng.random() < 0.10:
            fam, giv = latin_parts(ctx, p, style="joined")
            en = f"{fam} {giv}"
        return cn, en
    if p.group in ("HKG", "MAC", "TWN"):
        trad = rng.random() < 0.2
        cn = hanzi_name(ctx, p, trad=trad, homophone_p=0 if trad else R["homophone_hanzi_police"])
        en = ""
        if rng.random() < 0.5:
            fam, giv = latin_parts(ctx, p)
            en = f"{fam} {giv}"
        return cn, en
    fam, giv = latin_parts(ctx, p, translit_p=R["translit_variant_police"], middle_keep=R["middle_name_kept_police"],
                           second_keep=R["second_surname_kept_police"], patronymic_p=R["patronymic_in_police"],
                           style=rng.choice(["joined", "space", "hyphen"]))
    if rng.random() < 0.7:
        en = f"{fam} {giv}".upper()
    else:
        en = f"{giv} {fam}".title()
        ctx.count["name_given_first"] += 1
    if rng.random() < R["typo_latin_police"]:
        en = typo(rng, en)
        ctx.count["name_typo"] += 1
    return "", en


def commerce_names(ctx, p):
    rng = ctx.rng
    R = RATES
    fam, giv = latin_parts(ctx, p, translit_p=R["translit_variant_commerce"], native_p=R["native_diacritics_commerce"],
                           middle_keep=R["middle_name_kept_commerce"], patronymic_p=R["patronymic_in_commerce"],
                           style="hyphen" if p.group == "TWN" else None, eng_p=0.7)
    mode = "title" if rng.random() < 0.6 else "upper"
    fam, giv = case(fam, mode), case(giv, mode)
    if rng.random() < R["typo_latin_commerce"]:
        giv = typo(rng, giv)
        ctx.count["name_typo"] += 1
    if rng.random() < R["commerce_surname_given_swapped"]:
        fam, giv = giv, fam
        ctx.count["name_columns_swapped"] += 1
    cn = ""
    if p.group in ("HKG", "MAC", "TWN") and rng.random() < 0.9:
        cn = (p.hzt_fam + p.hzt_giv) if rng.random() < 0.8 else (p.hz_fam + p.hz_giv)
    return fam, giv, cn


def country(ctx, nat, src):
    rng = ctx.rng
    iso2, en, zh, native, icao = ND.COUNTRIES[nat]
    if src == "immigration":
        if icao and rng.random() < RATES["nationality_icao_D_for_germany_immigration"]:
            return icao
        return nat
    r = rng.random()
    if src == "health":
        if r < 0.02:
            return ""
        if r < 0.70:
            return rng.choice(zh)
        if r < 0.90:
            return rng.choice(en)
        return nat if r < 0.96 else iso2
    if src == "police":
        return rng.choice(zh) if r < 0.85 else iso2
    # commerce
    if r < 0.55:
        return rng.choice(en)
    if r < 0.80:
        return rng.choice(native)
    if r < 0.90:
        return nat
    return rng.choice(zh)


def corrupt_digits(ctx, num: str, is_cn: bool) -> str:
    """Phone digit string -> possibly an invalid (dropped digit / unallocated prefix) or a valid
    but wrong (one digit) number."""
    rng = ctx.rng
    r = rng.random()
    if r < RATES["phone_invalid"]:
        ctx.count["phone_invalid"] += 1
        if is_cn and rng.random() < 0.5:
            return rng.choice(["120", "121", "123", "125", "127"]) + num[3:]
        i = rng.randrange(2, len(num))
        return num[:i] + num[i + 1:]
    if r < RATES["phone_invalid"] + RATES["phone_typo_valid"]:
        ctx.count["phone_typo_valid"] += 1
        i = rng.randrange(len(num) - 6, len(num))
        return num[:i] + rng.choice([d for d in "0123456789" if d != num[i]]) + num[i + 1:]
    return num


def render_phone(ctx, ph, src, corrupt=True):
    """ph: ('CN', digits) or (cc, nsn, trunk)."""
    rng = ctx.rng
    if ph is None:
        return ""
    if ph[0] == "CN":
        n = corrupt_digits(ctx, ph[1], True) if corrupt else ph[1]
        if src == "health":
            k = rng.choices(range(7), [55, 12, 6, 6, 6, 8, 7])[0]
        elif src == "police":
            k = rng.choices([0, 5, 2], [85, 10, 5])[0]
        else:
            k = rng.choices([0, 1, 7, 8], [40, 35, 15, 10])[0]
        if k and len(n) == 11:
            ctx.count["phone_cn_formatted"] += 1
        if len(n) != 11:
            return n
        return [n, f"+86 {n[:3]} {n[3:7]} {n[7:]}", f"+86{n}", f"0086-{n}", f"86{n}", f"{n[:3]}-{n[3:7]}-{n[7:]}",
                f"{n[:3]} {n[3:7]} {n[7:]}", f"+86-{n[:3]}-{n[3:7]}-{n[7:]}", f"0086 {n}"][k]
    cc, nsn, trunk = ph
    nsn = corrupt_digits(ctx, nsn, False) if corrupt else nsn
    if rng.random() < RATES["foreign_phone_without_country_code"]:
        ctx.count["phone_foreign_without_cc"] += 1
        return (trunk + nsn) if (trunk and rng.random() < 0.6) else nsn
    k = rng.randrange(4)
    if k == 0:
        return f"+{cc} {nsn[:3]} {nsn[3:]}"
    if k == 1:
        return f"+{cc}{nsn}"
    if k == 2:
        return f"00{cc} {nsn}"
    return f"+{cc}-{nsn}"


def fullwidth_digits(s):
    return "".join(FULLWIDTH.get(c, c) for c in s)


def doc_typo(ctx, s: str) -> str:
    rng = ctx.rng
    if rng.random() < RATES["doc_letter_O_for_zero"] and "0" in s[1:]:
        ctx.count["doc_letter_O"] += 1
        i = s.index("0", 1)
        return s[:i] + "O" + s[i + 1:]
    pos = [i for i, c in enumerate(s) if c.isdigit()]
    if not pos:
        return s
    i = rng.choice(pos)
    ctx.count["doc_typo"] += 1
    return s[:i] + rng.choice([d for d in "0123456789" if d != s[i]]) + s[i + 1:]


def maybe_doc_typo(ctx, s, rate):
    if s and ctx.rng.random() < rate:
        return doc_typo(ctx, s)
    return s


def render_id(ctx, idn):
    if idn.endswith("X") and ctx.rng.random() < RATES["id_lowercase_x"]:
        ctx.count["id_lowercase_x"] += 1
        return idn[:-1] + "x"
    return idn


def dob_digit_typo(ctx, d: dt.date):
    """One mistyped digit in the day or the month: stays within the same year."""
    rng = ctx.rng
    y, m, dd = d.year, d.month, d.day
    ctx.count["dob_digit_typo"] += 1
    if rng.random() < 0.5:
        s = f"{dd:02d}"
        i = rng.randrange(2)
        s = s[:i] + rng.choice([c for c in "0123456789" if c != s[i]]) + s[i + 1:]
        dd = int(s)
    else:
        s = f"{m:02d}"
        i = rng.randrange(2)
        s = s[:i] + rng.choice([c for c in "0123456789" if c != s[i]]) + s[i + 1:]
        m = int(s)
    return y, m, dd


def dob_health(ctx, d):
    """(text, date read) in the health formats %Y-%m-%d | %Y/%m/%d | %Y%m%d."""
    rng = ctx.rng
    y, m, dd = d.year, d.month, d.day
    r = rng.random()
    if r < RATES["dob_digit_typo_health"]:
        y, m, dd = dob_digit_typo(ctx, d)
    elif r < RATES["dob_digit_typo_health"] + RATES["dob_day_month_swap_health"] and dd != m:
        m, dd = dd, m
        ctx.count["dob_day_month_swap"] += 1
    k = rng.choices(range(3), [60, 25, 15])[0]
    text = [f"{y}-{m:02d}-{dd:02d}", f"{y}/{m:02d}/{dd:02d}", f"{y}{m:02d}{dd:02d}"][k]
    return text, ymd_read(y, m, dd)


def dob_police(ctx, d):
    rng = ctx.rng
    y, m, dd = d.year, d.month, d.day
    if rng.random() < RATES["dob_digit_typo_police"]:
        y, m, dd = dob_digit_typo(ctx, d)
    if rng.random() < 0.5:
        if rng.random() < 0.5:
            text = f"{y}年{m}月{dd}日"
            ctx.count["dob_unpadded"] += 1
        else:
            text = f"{y}年{m:02d}月{dd:02d}日"
    else:
        text = f"{y}{m:02d}{dd:02d}"
    return text, ymd_read(y, m, dd)


def dob_commerce(ctx, d):
    """A cell for xlsx: ('date', date) | ('num', serial) | text."""
    rng = ctx.rng
    y, m, dd = d.year, d.month, d.day
    r = rng.random()
    typoed = swapped = False
    if r < RATES["dob_digit_typo_commerce"]:
        y, m, dd = dob_digit_typo(ctx, d)
        typoed = True
    elif r < RATES["dob_digit_typo_commerce"] + RATES["dob_day_month_swap_commerce"] and dd != m:
        swapped = True
        ctx.count["dob_day_month_swap"] += 1
    read = ymd_read(y, m, dd)
    k = rng.random()
    if swapped:  # written month/day/year in a day/month/year column
        text = f"{m:02d}/{dd:02d}/{y}"
        return text, ymd_read(y, dd, m)
    if read is None or typoed:
        return f"{dd:02d}/{m:02d}/{y}", read
    if k < RATES["commerce_dob_excel_date_cell"]:
        ctx.count["dob_excel_date_cell"] += 1
        return ("date", read), read
    if k < RATES["commerce_dob_excel_date_cell"] + RATES["commerce_dob_text_dmy"]:
        if rng.random() < 0.2:
            return f"{dd}/{m}/{y}", read
        return f"{dd:02d}/{m:02d}/{y}", read
    if k < 1 - 0.05:
        ctx.count["dob_excel_serial"] += 1
        return ("num", (read - dt.date(1899, 12, 30)).days), read
    return f"{y}-{m:02d}-{dd:02d}", read


def addr_text(p, english=False, rng=None):
    di, ri, num, bldg, room = p.addr
    dist_h, dist_e = ND.DISTRICTS[di]
    road_h, road_e = ND.ROADS[ri]
    if english:
        return f"Room {room}, Building {bldg}, No. {num} {road_e}, {dist_e}"
    if rng is not None and rng.random() < 0.3:
        return f"{road_h}{num}号{bldg}号楼{room}"
    return f"{dist_h}{road_h}{num}号{bldg}栋{room}室"


# ------------------------------------------------------------------------------------------------
# Context and row collection
# ------------------------------------------------------------------------------------------------
class Ctx:
    def __init__(self, seed, as_of):
        self.rng = random.Random(seed)
        self.as_of = as_of
        self.count = Counter()
        self.rows = {"immigration": [], "health": [], "police": [], "commerce": []}
        self.people: list[Person] = []

    def add(self, src, person, cols, sort_time, *, events=(), dest=None, dob=None, file=None):
        row = {"src": src, "pid": person.pid, "cols": cols, "t": sort_time, "events": list(events),
               "dest": dest or None, "dob": dob, "file": file}
        self.rows[src].append(row)
        return row


def fmt_h(ctx, t, alt=False):
    return t.strftime(HEALTH_TIME_FMT2 if alt else HEALTH_TIME_FMT)


def sex_text(sex, src, rng):
    if src == "immigration":
        return sex
    if src == "commerce":
        return ("Male" if sex == "M" else "Female") if rng.random() < 0.7 else sex
    return "男" if sex == "M" else "女"


# ------------------------------------------------------------------------------------------------
# Population, parties, timelines
# ------------------------------------------------------------------------------------------------
def pick_group(rng):
    r = rng.random()
    if r < POPULATION["CHN"]:
        return "CHN", "CHN"
    if r < POPULATION["CHN"] + POPULATION["HKMT"]:
        r2 = rng.random()
        g = "HKG" if r2 < POPULATION["HKG_of_HKMT"] else ("MAC" if r2 < POPULATION["HKG_of_HKMT"] + POPULATION["MAC_of_HKMT"] else "TWN")
        return g, g
    nat = FOREIGN_NAT_PICK(rng)
    return "FOR", nat


def new_addr(rng, district=None):
    di = DIST_PICK(rng) if district is None else district
    return (di, rng.randrange(len(ND.ROADS)), rng.randrange(1, 999), rng.randrange(1, 30),
            f"{rng.randrange(1, 33)}{rng.randrange(1, 9):02d}")


def build_party(ctx, size_left):
    """A travel party: list of Persons sharing flight, hotel (and for families phone, address)."""
    rng = ctx.rng
    group, nat = pick_group(rng)
    kind = rng.choices(["solo", "couple", "family", "colleagues"],
                       [POPULATION["party_solo"], POPULATION["party_couple"], POPULATION["party_family"],
                        POPULATION["party_colleagues"]])[0]
    head_sex = "M" if rng.random() < 0.58 else "F"
    head = make_person(ctx, group, nat, head_sex, rand_dob(rng, ctx.as_of, 22, 70))
    members = [head]
    head.addr = new_addr(rng)
    shared_family = kind in ("couple", "family")
    if kind in ("couple", "family"):
        if kind == "couple" or rng.random() < 0.8:
            sp_sex = "F" if head_sex == "M" else "M"
            sp_age = max(20, min(75, head.age + rng.randint(-6, 6)))
            fam = fam_hz = None
            if group == "FOR" and NAT_TABLE[nat] not in ("KOR", "VNM", "ARB") and rng.random() < 0.7:
                fam = head.lat_fam if head_sex == "M" else None
            sp = make_person(ctx, group, nat, sp_sex, rand_dob(rng, ctx.as_of, sp_age, sp_age), fam=fam)
            members.append(sp)
        if kind == "family":
            father = next((m for m in members if m.sex == "M"), head)
            nkids = rng.choices([1, 2, 3], [50, 35, 15])[0]
            twins = nkids >= 2 and rng.random() < POPULATION["twins_in_family_with_2plus_kids"]
            kid_ages = [max(0, min(17, head.age - rng.randint(22, 40))) for _ in range(nkids)]
            kids = []
            for i in range(nkids):
                ksex = "M" if rng.random() < 0.5 else "F"
                if twins and i == 1:
                    kdob = kids[0].dob
                else:
                    kdob = rand_dob(rng, ctx.as_of, kid_ages[i], kid_ages[i])
                if group == "CHN":
                    k = make_person(ctx, group, nat, ksex, kdob, fam_hz=(father.hz_fam, father.lat_fam[0].variants[0].lower()))
                elif group in ("HKG", "MAC", "TWN"):
                    tabs = ND.HK_SURNAMES if group != "TWN" else ND.TW_SURNAMES
                    fam_row = next(x[:4] for x in tabs if x[0] == father.hzt_fam and x[2] == father.lat_fam[0].variants[0])
                    k = make_person(ctx, group, nat, ksex, kdob, fam_hz=fam_row)
                else:
                    k = make_person(ctx, group, nat, ksex, kdob, fam=father.fam_base)
                if twins and i == 1:
                    # twins: consecutive passports, different given names
                    while (k.hz_giv == kids[0].hz_giv and k.hz_giv) or \
                            (k.lat_giv[0][0].variants[0] == kids[0].lat_giv[0][0].variants[0]):
                        k = make_person(ctx, group, nat, ksex, kdob, fam=k.fam_base if group == "FOR" else None,
                                        fam_hz=(kids[0].hz_fam, kids[0].lat_fam[0].variants[0].lower()) if group == "CHN" else
                                        (next(x[:4] for x in (ND.HK_SURNAMES if group != "TWN" else ND.TW_SURNAMES)
                                              if x[0] == kids[0].hzt_fam and x[2] == kids[0].lat_fam[0].variants[0])
                                         if group != "FOR" else None))
                    if k.passport:
                        k.passport = increment_number(kids[0].passport)
                    if k.permit:
                        k.permit = increment_number(kids[0].permit)
                    if k.id_number:
                        first = kids[0].id_number[:14] + f"{(int(kids[0].id_number[14:17]) + 1) % 1000:03d}"
                        k.id_number = first + id_check_char(first)
                    ctx.count["twin_pairs"] += 1
                k.is_child = True
                kids.append(k)
            members.extend(kids)
    elif kind == "colleagues":
        for _ in range(rng.randint(1, 3)):
            m = make_person(ctx, group, nat if group != "FOR" or rng.random() < 0.8 else FOREIGN_NAT_PICK(rng),
                            "M" if rng.random() < 0.6 else "F", rand_dob(rng, ctx.as_of, 23, 60))
            members.append(m)
    members = members[:size_left]
    for m in members:
        m.kind = "traveler"
        m.head = head
        m.party = kind
        if shared_family:
            m.addr = head.addr
        elif m.addr is None:
            m.addr = new_addr(rng, head.addr[0] if rng.random() < 0.5 else None)
        m.dest = m.addr[0]
        if m.is_child:
            m.cn_phone = None
            m.home_phone = None
    # phones given to health / police
    for m in members:
        own = None
        if m.group == "CHN":
            own = ("CN", m.cn_phone) if m.cn_phone else None
        elif m.cn_phone and rng.random() < 0.5:
            own = ("CN", m.cn_phone)
        elif m.home_phone:
            own = m.home_phone
        m.health_phone = own
        m.police_phone = ("CN", m.cn_phone) if m.cn_phone and rng.random() < 0.9 else m.home_phone
    for m in members:
        if m is head:
            continue
        if shared_family and (m.is_child or m.health_phone is None or rng.random() < RATES["family_member_uses_head_phone"]):
            m.health_phone = head.health_phone
            ctx.count["family_shared_phone"] += 1
        if m.is_child or m.police_phone is None:
            m.police_phone = head.police_phone
    return members


def plan_party_times(ctx, members):
    """Arrival, flight, hotel and the on-time timeline of a party."""
    rng = ctx.rng
    as_of = ctx.as_of
    head = members[0]
    g = head.group
    if g in ("HKG", "MAC"):
        mode = rng.choices(["air", "rail", "ferry"], [50, 40, 10])[0]
    else:
        mode = "air"
    if mode == "air":
        pool = ND.FLIGHT_POOLS.get(g if g != "FOR" else NAT_TABLE[head.nat])
        if g == "CHN":
            pool = ND.FLIGHT_POOLS["CHN"] + ND.FLIGHT_POOLS[rng.choice(list(ND.FLIGHT_POOLS))]
        flight = rng.choice(pool)
        port = rng.choice(["滨海国际机场T1", "滨海国际机场T2"])
    elif mode == "rail":
        flight = rng.choice(ND.TRAINS)
        port = "滨海西站"
    else:
        flight = rng.choice(ND.FERRIES)
        port = "滨海港客运码头"
    sched = ctx.sched.setdefault(flight, rng.randrange(0, 1440))
    days = POPULATION["arrival_window_days"]
    while True:
        day = as_of.date() - dt.timedelta(days=rng.randrange(days) + 1)
        landing = dt.datetime.combine(day, dt.time()) + dt.timedelta(minutes=sched)
        base = landing + dt.timedelta(minutes=rng.randint(20, 70))
        if base < as_of - dt.timedelta(minutes=10):
            break
    hotel = rng.randrange(len(ND.HOTEL_NAMES))
    hcs = []
    for m in members:
        m.flight, m.port, m.hotel = flight, port, hotel
        m.room = f"{rng.randrange(2, 20)}{rng.randrange(1, 40):02d}"
        A = base + dt.timedelta(minutes=rng.randint(0, 6), seconds=rng.randrange(60))
        a_min = A.replace(second=0)
        reg = a_min + dt.timedelta(minutes=rng.randint(8, 75))
        hc = reg + dt.timedelta(minutes=rng.randint(5, 60))
        m.times = {"arrival": A, "registration": reg, "health_check": hc}
        hcs.append(hc)
    tr = max(hcs) + dt.timedelta(minutes=rng.randint(15, 60))
    qs = tr + dt.timedelta(minutes=rng.randint(25, 90))
    qe = qs + dt.timedelta(days=14, minutes=rng.randint(120, 1560))
    ho = qe + dt.timedelta(minutes=rng.randint(60, 1200))
    for m in members:
        m.times.update(transfer=tr, quarantine_start=qs, quarantine_end=qe,
                       handover=ho + dt.timedelta(minutes=rng.randint(0, 15)))
        m.ho_district = m.dest


def apply_break(ctx, m):
    rng = ctx.rng
    r = rng.random()
    acc = 0.0
    brk = None
    for k, w in BREAKS:
        acc += w
        if r < acc:
            brk = k
            break
    m.brk = brk
    t = m.times
    M = lambda a, b: dt.timedelta(minutes=rng.randint(a, b))  # noqa: E731
    A = t["arrival"].replace(second=0)
    if brk == "late_registration":
        t["registration"] = A + M(135, 200)
        t["health_check"] = t["registration"] + M(5, 30)
        t["transfer"] = max(t["transfer"], t["health_check"] + M(15, 40))
    elif brk == "late_health_check":
        t["health_check"] = A + M(255, 320)
        t["transfer"] = max(t["transfer"], t["health_check"] + M(15, 30))
    elif brk == "late_transfer":
        t["transfer"] = A + M(375, 600)
    elif brk == "late_checkin":
        t["quarantine_start"] = t["transfer"] + M(135, 360)
    elif brk == "early_release":
        t["quarantine_end"] = t["quarantine_start"] + dt.timedelta(minutes=rng.randint(5 * 1440, 13 * 1440 + 18 * 60))
    elif brk == "late_handover":
        t["handover"] = t["quarantine_end"] + M(26 * 60, 96 * 60)
    elif brk == "handover_before_release":
        t["handover"] = t["quarantine_end"] - M(120, 48 * 60)
    elif brk == "registration_before_arrival":
        t["registration"] = A - M(10, 90)
    elif brk == "wrong_district":
        m.ho_district = rng.choice([i for i in range(len(ND.DISTRICTS)) if i != m.dest])
    # keep the downstream of a moved stage consistent (on time relative to it)
    if t["quarantine_start"] <= t["transfer"] + dt.timedelta(minutes=20):
        t["quarantine_start"] = t["transfer"] + M(25, 90)
    if brk not in ("early_release",) and t["quarantine_end"] < t["quarantine_start"] + dt.timedelta(days=14, hours=2):
        t["quarantine_end"] = t["quarantine_start"] + dt.timedelta(days=14, minutes=rng.randint(120, 1560))
    if brk not in ("late_handover", "handover_before_release") and not (
            t["quarantine_end"] + dt.timedelta(minutes=30) < t["handover"] < t["quarantine_end"] + dt.timedelta(hours=22)):
        t["handover"] = t["quarantine_end"] + M(60, 1200)
    if brk is not None:
        ctx.count["break_" + brk] += 1


def near_boundary(ctx, m, chain) -> bool:
    """True when a deadline or an event time falls within 2 minutes of the as-of time, or a gap
    within 2 minutes of its limit (the truth must not hinge on a rounding)."""
    as_of = ctx.as_of
    eps = dt.timedelta(minutes=2)
    t = m.times
    for v in t.values():
        if abs(v - as_of) < eps:
            return True
    for st in chain:
        a = st["after"]
        if a is None or a not in t or st["name"] not in t:
            continue
        for key in ("max_gap", "min_gap"):
            g = st.get(key)
            if g is None:
                continue
            if abs(t[a] + g - as_of) < eps:
                return True
            if abs((t[st["name"]] - t[a]) - g) < eps:
                return True
    return False


# ------------------------------------------------------------------------------------------------
# Rows per agency
# ------------------------------------------------------------------------------------------------
def health_doc(ctx, p, rich_level):
    """(证件类型, 证件号码)"""
    rng = ctx.rng
    if p.group == "CHN":
        r = rng.random()
        if r < 0.80 or rich_level == 2:
            return "居民身份证", render_id(ctx, maybe_doc_typo(ctx, p.id_number, RATES["doc_typo_health"]))
        if r < 0.92:
            return "护照", maybe_doc_typo(ctx, p.passport, RATES["doc_typo_health"])
        return "", ""
    if p.group in ("HKG", "MAC"):
        return "港澳居民来往内地通行证", maybe_doc_typo(ctx, p.permit, RATES["doc_typo_health"])
    if p.group == "TWN":
        return "台湾居民来往大陆通行证", maybe_doc_typo(ctx, p.permit, RATES["doc_typo_health"])
    if p.prc and rng.random() < 0.3:
        return "外国人永久居留身份证", maybe_doc_typo(ctx, p.prc, RATES["doc_typo_health"])
    return "护照", maybe_doc_typo(ctx, p.passport, RATES["doc_typo_health"])


def health_phone_text(ctx, p):
    s = render_phone(ctx, p.health_phone, "health")
    if s and ctx.rng.random() < RATES["fullwidth_phone_digits_health"]:
        ctx.count["phone_fullwidth"] += 1
        s = fullwidth_digits(s)
    return s


def blank_health():
    return {c: "" for c in HEALTH_COLS}


def health_row(ctx, p, kind, t_business, *, rich=True, file="port"):
    rng = ctx.rng
    c = blank_health()
    c["业务类型"] = kind
    c["姓名"] = health_name(ctx, p)
    c["性别"] = sex_text(p.sex, "health", rng) if rng.random() > 0.01 else ""
    c["国籍地区"] = country(ctx, p.nat, "health")
    c["联系电话"] = health_phone_text(ctx, p)
    c["业务时间"] = fmt_h(ctx, t_business)
    dob = None
    if rich:
        if rng.random() >= RATES["dob_missing_health_rich"]:
            c["出生日期"], dob = dob_health(ctx, p.dob)
        c["证件类型"], c["证件号码"] = health_doc(ctx, p, 1)
    return c, dob


def gen_traveler_rows(ctx, p):
    rng = ctx.rng
    as_of = ctx.as_of
    t = p.times
    brk = p.brk
    rows = []
    dest_name = ND.DISTRICTS[p.dest][0]
    # 1. immigration
    if brk != "miss_arrival" and t["arrival"] <= as_of:
        en, cn = immigration_names(ctx, p)
        dob = None
        dob_text = ""
        if rng.random() >= RATES["dob_missing_immigration"]:
            dob_text, dob = f"{p.dob:%Y%m%d}", p.dob
        if p.group == "CHN":
            dtype, dno = "P", p.passport
        elif p.group in ("HKG", "MAC"):
            dtype, dno = "HKMP", p.permit
        elif p.group == "TWN":
            dtype, dno = "TWP", p.permit
        else:
            dtype, dno = "P", p.passport
        cols = dict(entry_id="", name_en=en, name_cn=cn, gender=p.sex, birth_date=dob_text,
                    nationality=country(ctx, p.nat, "immigration"), doc_type=dtype, doc_no=dno,
                    flight_train_no=p.flight, port=p.port, entry_time=t["arrival"].strftime(IMM_TIME_FMT),
                    visa_type=(p.visa or "") if p.group == "FOR" else "")
        rows.append(ctx.add("immigration", p, cols, t["arrival"], events=[("arrival", t["arrival"], None)], dob=dob))
    # 2. health: registration (+ duplicate), port health check
    if brk != "miss_registration" and t["registration"] <= as_of:
        times = [t["registration"]]
        if rng.random() < RATES["dup_registration"]:
            t2 = t["registration"] + dt.timedelta(minutes=rng.randint(3, 25))
            if t2 <= as_of:
                times.append(t2)
                ctx.count["dup_registration"] += 1
        for i, tt in enumerate(times):
            c, dob = health_row(ctx, p, "入境登记", tt, rich=True)
            c["航班车次"] = p.flight if rng.random() < 0.9 else ""
            c["入境口岸"] = p.port
            c["目的地区"] = dest_name if rng.random() < 0.92 else ""
            c["备注"] = "重复录入" if i and rng.random() < 0.2 else ("家属同行" if p.party == "family" and rng.random() < 0.3 else "")
            rows.append(ctx.add("health", p, c, tt, events=[("registration", tt, None)], dest=c["目的地区"], dob=dob,
                                file="port"))
    if brk != "miss_health_check" and t["health_check"] <= as_of:
        thin = rng.random() < RATES["thin_health_check_record"]
        c, dob = health_row(ctx, p, "口岸健康检查", t["health_check"], rich=not thin)
        if thin:
            ctx.count["thin_health_check"] += 1
        else:
            c["入境口岸"] = p.port
        rows.append(ctx.add("health", p, c, t["health_check"], events=[("health_check", t["health_check"], None)],
                            dob=dob, file="port"))
    # 3. health: transfer + quarantine hotel (one row, or two when the traveler changed hotel)
    if brk != "miss_quarantine_record" and t["transfer"] <= as_of:
        stays = [(t["transfer"], t["quarantine_start"], t["quarantine_end"], p.hotel)]
        if p.hotel_change:
            t2 = t["quarantine_start"] + dt.timedelta(minutes=rng.randint(3 * 1440, 8 * 1440))
            q2 = t2 + dt.timedelta(minutes=rng.randint(30, 90))
            new_hotel = (p.hotel + 1 + rng.randrange(len(ND.HOTEL_NAMES) - 1)) % len(ND.HOTEL_NAMES)
            stays = [(t["transfer"], t["quarantine_start"], None, p.hotel), (t2, q2, t["quarantine_end"], new_hotel)]
        alt_fmt = rng.random() < 0.10
        for j, (tr, qs, qe, hotel) in enumerate(stays):
            if tr > as_of:
                continue
            thin = rng.random() < RATES["thin_quarantine_record"]
            c, dob = health_row(ctx, p, "转运隔离", tr, rich=not thin, file="quarantine")
            if thin:
                ctx.count["thin_quarantine"] += 1
            ev = [("transfer", tr, None)]
            c["转运时间"] = fmt_h(ctx, tr, alt_fmt)
            if qs <= as_of and not (brk == "miss_checkin" and j == 0):
                c["入住时间"] = fmt_h(ctx, qs, alt_fmt)
                ev.append(("quarantine_start", qs, None))
            if qe is not None and qe <= as_of and brk != "miss_release":
                c["解除隔离时间"] = fmt_h(ctx, qe, alt_fmt)
                ev.append(("quarantine_end", qe, None))
            c["隔离酒店"] = ND.HOTEL_NAMES[hotel]
            c["房间号"] = p.room
            c["目的地区"] = dest_name if rng.random() < 0.85 else ""
            if not thin:
                c["航班车次"] = p.flight if rng.random() < 0.5 else ""
            if j == 1:
                c["备注"] = "转至" + ND.HOTEL_NAMES[hotel]
            rows.append(ctx.add("health", p, c, tr, events=ev, dest=c["目的地区"], dob=dob, file="quarantine"))
        # in-quarantine tests: thin records that carry no chain event
        for k in (3, 7, 12):
            tt = t["quarantine_start"] + dt.timedelta(days=k, minutes=rng.randint(-120, 120))
            if tt <= as_of and tt < t["quarantine_end"] and rng.random() < RATES["in_quarantine_test_per_slot"]:
                c, _ = health_row(ctx, p, "隔离期核酸检测", tt, rich=False, file="quarantine")
                c["隔离酒店"] = ND.HOTEL_NAMES[stays[-1][3] if len(stays) > 1 and tt > stays[-1][0] else p.hotel]
                c["房间号"] = p.room
                c["备注"] = f"第{k}天"
                rows.append(ctx.add("health", p, c, tt, file="quarantine"))
                ctx.count["in_quarantine_test"] += 1
    # 4. police: handover (+ duplicate) and later temporary stays
    if brk != "miss_handover" and t["handover"] <= as_of:
        times = [(t["handover"], False)]
        if rng.random() < RATES["dup_handover"]:
            t2 = t["handover"] + dt.timedelta(minutes=rng.randint(2, 40))
            if t2 <= as_of:
                times.append((t2, True))
                ctx.count["dup_handover"] += 1
        station = rng.choice(ctx.stations[p.ho_district])
        for tt, alt in times:
            tt = tt + dt.timedelta(seconds=rng.randrange(60))
            c = police_cols(ctx, p, HANDOVER_TYPE, tt, p.ho_district, station, alt_doc=alt)
            c["居住地址"] = addr_text(p, rng=rng) if rng.random() < 0.95 else ""
            rows.append(ctx.add("police", p, c, tt, events=[("handover", tt, c["辖区"])], dob=c.pop("_dob")))
        if rng.random() < RATES["police_temp_stay_after_handover"]:
            tt = t["handover"] + dt.timedelta(days=rng.randint(2, 12), minutes=rng.randint(0, 1440), seconds=rng.randrange(60))
            if tt <= as_of:
                di = DIST_PICK(rng)
                c = police_cols(ctx, p, "临时住宿登记", tt, di, rng.choice(ctx.stations[di]))
                c["居住地址"] = ND.DISTRICTS[di][0] + rng.choice(ND.HOTEL_NAMES)
                rows.append(ctx.add("police", p, c, tt, dob=c.pop("_dob")))
                ctx.count["police_temp_stay"] += 1
    return rows


def police_cols(ctx, p, reg_type, tt, district, station, alt_doc=False):
    rng = ctx.rng
    c = {k: "" for k in POLICE_COLS}
    c["登记类型"] = reg_type
    c["中文姓名"], c["外文姓名"] = police_names(ctx, p)
    c["性别"] = sex_text(p.sex, "police", rng)
    dob = None
    if rng.random() >= RATES["dob_missing_police"]:
        c["出生日期"], dob = dob_police(ctx, p.dob)
    c["国籍"] = country(ctx, p.nat, "police")
    rate = RATES["doc_typo_police"]
    if p.group == "CHN":
        if (rng.random() < 0.95) != alt_doc:
            c["证件种类"], c["证件号码"] = "居民身份证", render_id(ctx, maybe_doc_typo(ctx, p.id_number, rate))
        else:
            c["证件种类"], c["证件号码"] = "护照", maybe_doc_typo(ctx, p.passport, rate)
    elif p.group in ("HKG", "MAC", "TWN"):
        if alt_doc and p.hk_passport:
            c["证件种类"], c["证件号码"] = "香港特区护照", p.hk_passport
        else:
            c["证件种类"] = "港澳居民来往内地通行证" if p.group != "TWN" else "台湾居民来往大陆通行证"
            c["证件号码"] = maybe_doc_typo(ctx, p.permit, rate)
    else:
        if p.prc and (alt_doc or rng.random() < 0.4):
            c["证件种类"], c["证件号码"] = "外国人永久居留身份证", maybe_doc_typo(ctx, p.prc, rate)
        elif p.passport_old and rng.random() < RATES["police_handover_with_old_passport_if_reissued"]:
            c["证件种类"], c["证件号码"] = "护照", p.passport_old
            ctx.count["police_old_passport"] += 1
        else:
            c["证件种类"], c["证件号码"] = "护照", maybe_doc_typo(ctx, p.passport, rate)
    if alt_doc:
        ctx.count["dup_handover_alt_doc"] += int(c["证件号码"] not in (p.passport, p.id_number))
    c["联系电话"] = render_phone(ctx, p.police_phone, "police")
    c["辖区"] = ND.DISTRICTS[district][0]
    c["派出所"] = station
    c["登记时间"] = tt.strftime(POLICE_TIME_FMT)
    c["登记民警"] = f"{rng.randrange(100000, 999999)}"
    c["_dob"] = dob
    return c


def gen_commerce_rows(ctx, p):
    rng = ctx.rng
    rows = []
    n = 2 if rng.random() < RATES["dup_commerce"] else 1
    if n == 2:
        ctx.count["dup_commerce"] += 1
    for i in range(n):
        fam, giv, cn = commerce_names(ctx, p)
        dob = None
        cell = ""
        if rng.random() >= RATES["dob_missing_commerce"]:
            cell, dob = dob_commerce(ctx, p.dob)
        passport = ""
        permit = ""
        if p.group == "FOR":
            passport = p.passport_old if (p.passport_old and rng.random() < RATES["commerce_shows_old_passport_if_reissued"]) else p.passport
            passport = maybe_doc_typo(ctx, passport, RATES["doc_typo_commerce"])
            permit = p.prc or ""
        else:
            permit = maybe_doc_typo(ctx, p.permit, RATES["doc_typo_commerce"])
            passport = p.hk_passport or ""
        if p.cn_phone_old and rng.random() < 0.9:
            phone = ("CN", p.cn_phone_old)
        elif p.cn_phone and rng.random() < 0.85:
            phone = ("CN", p.cn_phone)
        else:
            phone = p.home_phone
        emp = p.employer if i == 0 else rng.choice(ND.EMPLOYERS)
        reg_on = ctx.as_of.date() - dt.timedelta(days=rng.randint(60, 2000) if i == 0 else rng.randint(1, 59))
        emp_addr_d = rng.randrange(len(ND.DISTRICTS))
        cols = {
            "Reg No.": "", "Surname": fam, "Given Names": giv, "Chinese Name": cn,
            "Sex": sex_text(p.sex, "commerce", rng), "Date of Birth": cell,
            "Nationality": country(ctx, p.nat, "commerce"), "Passport No.": passport,
            "Permit / Residence Card No.": permit, "Employer": emp[0],
            "Work Address": f"{ND.DISTRICTS[emp_addr_d][1]}, {rng.choice(ND.ROADS)[1]} No. {rng.randrange(1, 400)}",
            "Home Address": addr_text(p, english=rng.random() < 0.4, rng=rng) if rng.random() < 0.9 else "",
            "Mobile": render_phone(ctx, phone, "commerce", corrupt=rng.random() < 0.5),
            "E-mail": p.email if rng.random() < 0.9 else "",
            "Registered On": reg_on.strftime("%Y-%m-%d"),
        }
        rows.append(ctx.add("commerce", p, cols, dt.datetime.combine(reg_on, dt.time()), dob=dob))
    return rows


def make_employee(ctx, p):
    rng = ctx.rng
    p.employee = True
    p.employer = rng.choice(ND.EMPLOYERS)
    if p.group == "FOR":
        if rng.random() < RATES["passport_reissued_foreign_employee"]:
            p.passport_old = p.passport
            p.passport = foreign_passport(rng, p.nat)
            ctx.count["passport_reissued"] += 1
        if rng.random() < RATES["permanent_residence_card_foreign_employee"]:
            p.prc = p.nat + digits(rng, 12)
            ctx.count["permanent_residence_card"] += 1
        if p.cn_phone is None and rng.random() < 0.9:
            p.cn_phone = cn_mobile(rng)
            if p.kind == "traveler" and p.police_phone is not None and p.police_phone[0] != "CN":
                p.police_phone = ("CN", p.cn_phone)
    if p.cn_phone and rng.random() < RATES["employee_commerce_phone_is_old"]:
        p.cn_phone_old = cn_mobile(rng)
        ctx.count["employee_phone_changed"] += 1
    fam = mrz_ascii(p.lat_fam[0].variants[0]).lower().replace(" ", "").replace("-", "")
    giv = mrz_ascii(p.lat_giv[-1][0].variants[0] if p.group == "FOR" and len(p.lat_giv) > 1 and p.lat_giv[0][1]
                    else p.lat_giv[0][0].variants[0]).lower().replace(" ", "").replace("-", "")
    if p.eng and rng.random() < 0.7:
        giv = p.eng.lower()
    if rng.random() < 0.6:
        p.email = f"{giv}.{fam}@{p.employer[1]}"
    else:
        p.email = f"{giv[:1]}{fam}{rng.randrange(1, 99) if rng.random() < 0.5 else ''}@{rng.choice(ND.FREE_MAIL)}"


# ------------------------------------------------------------------------------------------------
# Identity conflicts and truth
# ------------------------------------------------------------------------------------------------
def inject_conflict(ctx, p, rows):
    """Data-entry errors a traveler's records really contradict: a different valid resident ID, or a
    birth date years apart, in one of their records."""
    rng = ctx.rng
    if p.group == "CHN":
        cand = [r for r in rows if r["src"] in ("health", "police") and
                r["cols"].get("证件种类", r["cols"].get("证件类型")) == "居民身份证"]
        others = [r for r in rows if valid_resident_id(r["cols"].get("证件号码", ""))]
        if len(cand) >= 2 and len(others) >= 2 and rng.random() < 0.7:
            r = rng.choice([r for r in cand if r in others] or cand)
            r["cols"]["证件号码"] = other_valid_id(rng, p.id_number, p.sex)
            ctx.count["identity_conflict_id"] += 1
            return
    cand = [r for r in rows if r["dob"] is not None and r["src"] in ("health", "police", "commerce")]
    if not cand or sum(r["dob"] is not None for r in rows) < 2:
        ctx.count["identity_conflict_not_placed"] += 1
        return
    r = rng.choice(cand)
    shift = rng.choice([-1, 1]) * rng.randint(3, 20)
    d = p.dob
    try:
        nd = d.replace(year=d.year + shift)
    except ValueError:
        nd = d.replace(year=d.year + shift, day=28)
    if r["src"] == "health":
        r["cols"]["出生日期"] = f"{nd:%Y-%m-%d}"
    elif r["src"] == "police":
        r["cols"]["出生日期"] = f"{nd:%Y%m%d}"
    else:
        r["cols"]["Date of Birth"] = f"{nd.day:02d}/{nd.month:02d}/{nd.year}"
    r["dob"] = nd
    ctx.count["identity_conflict_dob"] += 1


def load_chain(path):
    with open(path, "rb") as f:
        cfg = tomllib.load(f)
    stages = []
    prev = None
    for st in cfg["stages"]:
        stages.append({
            "name": st["name"],
            "after": st.get("after", prev),
            "max_gap": parse_duration(st["max_gap"]) if "max_gap" in st else None,
            "min_gap": parse_duration(st["min_gap"]) if "min_gap" in st else None,
            "required": st.get("required", True),
            "destination": st.get("destination"),
        })
        prev = st["name"]
    return stages


def row_ids(row):
    c = row["cols"]
    out = set()
    for k in ("证件号码", "doc_no", "Passport No.", "Permit / Residence Card No."):
        v = c.get(k)
        if isinstance(v, str) and valid_resident_id(v):
            out.add(v.strip().upper())
    return out


def truth_flags(ctx, chain):
    by_person = defaultdict(list)
    for src in ctx.rows:
        for r in ctx.rows[src]:
            by_person[r["pid"]].append(r)
    flags = []
    as_of = ctx.as_of
    for p in ctx.people:
        rows = by_person.get(p.pid, [])
        events = [(s, t, d) for r in rows for (s, t, d) in r["events"]]
        if not events:
            continue
        first = {}
        first_district = {}
        for s, t, d in sorted(events, key=lambda e: e[1]):
            if s not in first:
                first[s] = t
                first_district[s] = d
        names = [st["name"] for st in chain]
        for i, st in enumerate(chain):
            s = st["name"]
            if s not in first:
                if not st["required"]:
                    continue
                later = any(n in first for n in names[i + 1:])
                overdue = (st["max_gap"] is not None and st["after"] in first
                           and first[st["after"]] + st["max_gap"] < as_of)
                if later or overdue:
                    flags.append((p.pid, "MISSING_STAGE", s))
                continue
            a = st["after"]
            if a is not None and a in first:
                gap = first[s] - first[a]
                if st["max_gap"] is not None and gap > st["max_gap"]:
                    flags.append((p.pid, "GAP_EXCEEDED", s))
                if st["min_gap"] is not None and gap < st["min_gap"]:
                    flags.append((p.pid, "EARLY_RELEASE", s))
            before = [first[n] for n in names[:i] if n in first]
            if before and first[s] < max(before):
                flags.append((p.pid, "OUT_OF_ORDER", s))
            if st["destination"]:
                dests = Counter(r["dest"] for r in rows if r["dest"])
                if dests and first_district.get(s):
                    top = dests.most_common()
                    if len(top) > 1 and top[0][1] == top[1][1]:
                        ctx.count["destination_tie"] += 1
                    if first_district[s] != top[0][0]:
                        flags.append((p.pid, "DISTRICT_MISMATCH", s))
        ids = set()
        dobs = []
        for r in rows:
            ids |= row_ids(r)
            if r["dob"] is not None:
                dobs.append(r["dob"])
        if len(ids) > 1 or (dobs and (max(dobs) - min(dobs)).days > 365):
            flags.append((p.pid, "IDENTITY_CONFLICT", ""))
    return flags


# ------------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------------
def assign_ids(ctx):
    rng = ctx.rng
    for src, rows in ctx.rows.items():
        rows.sort(key=lambda r: (r["t"], r["pid"]))
    seq = rng.randrange(100000, 900000)
    for i, r in enumerate(ctx.rows["immigration"]):
        r["id"] = f"IMM{r['t']:%Y%m%d}{seq + i:07d}"
        r["cols"]["entry_id"] = r["id"]
    base = rng.randrange(10 ** 8, 2 * 10 ** 8)
    for i, r in enumerate(ctx.rows["health"]):
        r["id"] = f"HJ{base + i * 3 + rng.randrange(3):09d}"
        r["cols"]["记录编号"] = r["id"]
    for i, r in enumerate(ctx.rows["police"]):
        r["id"] = f"GA3201{r['t']:%Y%m}{i + 1:07d}"
        r["cols"]["登记编号"] = r["id"]
    for i, r in enumerate(ctx.rows["commerce"]):
        r["id"] = f"WQ{i + 1:06d}"
        r["cols"]["Reg No."] = r["id"]


def write_csv(path, cols, rows, encoding):
    with open(path, "w", encoding=encoding, newline="") as f:
        w = csv.writer(f, lineterminator="\r\n" if encoding == "gb18030" else "\n")
        w.writerow(cols)
        for r in rows:
            w.writerow([r["cols"][c] for c in cols])


def write_xlsx(path, sheet, cols, rows, created):
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_numbers": False,
                                         "strings_to_formulas": False, "strings_to_urls": False})
    wb.set_properties({"created": created, "author": "heldout generator"})
    ws = wb.add_worksheet(sheet)
    datefmt = wb.add_format({"num_format": "yyyy-mm-dd"})
    ws.write_row(0, 0, cols)
    for i, r in enumerate(rows, start=1):
        for j, c in enumerate(cols):
            v = r["cols"][c]
            if isinstance(v, tuple):
                if v[0] == "date":
                    ws.write_datetime(i, j, dt.datetime.combine(v[1], dt.time()), datefmt)
                else:
                    ws.write_number(i, j, v[1])
            elif v == "":
                continue
            else:
                ws.write_string(i, j, v)
    wb.close()


def source_configs():
    imm = '''# Border entry records (exit-entry administration), one row per entry.
name = "immigration"
format = "csv"
encoding = "utf-8"
delimiter = ","
record_id = "entry_id"
name_order = "family_first"    # MRZ style: SURNAME GIVEN NAMES (sometimes "SURNAME, GIVEN")
phone_region = "CN"

[fields]
full_name = "name_en"
local_name = "name_cn"
sex = "gender"
dob = "birth_date"
nationality = "nationality"
doc_no = "doc_no"
doc_type = "doc_type"          # P = passport, HKMP = HK/Macao permit, TWP = Taiwan permit

[extra]
flight = "flight_train_no"

[formats]
birth_date = ["%Y%m%d"]

[[events]]
stage = "arrival"
time = "entry_time"
formats = ["%Y-%m-%d %H:%M:%S"]
place = "port"
'''
    health = '''# Health commission: port registration, port health check, transfer + quarantine hotel,
# in-quarantine tests (no chain event). Two files with one layout: health_port_*.csv and
# health_quarantine_*.csv (UTF-8 with BOM).
name = "health"
format = "csv"
encoding = "utf-8"
delimiter = ","
record_id = "记录编号"
name_order = "auto"            # hanzi, pinyin or Latin, typed in either order
phone_region = "CN"

[fields]
full_name = "姓名"
sex = "性别"
dob = "出生日期"
nationality = "国籍地区"
doc_no = "证件号码"
doc_type = "证件类型"
phone = "联系电话"

[extra]
flight = "航班车次"
hotel = "隔离酒店"
destination_district = "目的地区"

[formats]
"出生日期" = ["%Y-%m-%d", "%Y/%m/%d", "%Y%m%d"]

[[events]]
stage = "registration"
time = "业务时间"
formats = ["%Y-%m-%d %H:%M"]
place = "入境口岸"
when = { column = "业务类型", equals = ["入境登记"] }

[[events]]
stage = "health_check"
time = "业务时间"
formats = ["%Y-%m-%d %H:%M"]
place = "入境口岸"
when = { column = "业务类型", equals = ["口岸健康检查"] }

[[events]]
stage = "transfer"
time = "转运时间"
formats = ["%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M"]
when = { column = "业务类型", equals = ["转运隔离"] }

[[events]]
stage = "quarantine_start"
time = "入住时间"
formats = ["%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M"]
place = "隔离酒店"
when = { column = "业务类型", equals = ["转运隔离"] }

[[events]]
stage = "quarantine_end"
time = "解除隔离时间"
formats = ["%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M"]
place = "隔离酒店"
when = { column = "业务类型", equals = ["转运隔离"] }
'''
    police = '''# Public security: residence / accommodation registrations (GB18030). Only 社区移交登记
# (handover to the community after release) is a chain event.
name = "police"
format = "csv"
encoding = "gb18030"
delimiter = ","
record_id = "登记编号"
name_order = "auto"
phone_region = "CN"

[fields]
local_name = "中文姓名"
full_name = "外文姓名"
sex = "性别"
dob = "出生日期"
nationality = "国籍"
doc_no = "证件号码"
doc_type = "证件种类"
phone = "联系电话"
address = "居住地址"
district = "辖区"

[formats]
"出生日期" = ["%Y年%m月%d日", "%Y%m%d"]

[[events]]
stage = "handover"
time = "登记时间"
formats = ["%Y%m%d%H%M%S"]
place = "派出所"
district = "辖区"
when = { column = "登记类型", equals = ["社区移交登记"] }
'''
    commerce = '''# Commerce bureau: register of employees of foreign-invested enterprises (foreigners and
# HK / Macao / Taiwan residents). No chain events.
name = "commerce"
format = "xlsx"
sheet = "外籍员工名册"
record_id = "Reg No."
name_order = "family_first"
phone_region = "CN"

[fields]
family_name = "Surname"
given_name = "Given Names"
local_name = "Chinese Name"
sex = "Sex"
dob = "Date of Birth"
nationality = "Nationality"
passport = "Passport No."
permit_no = "Permit / Residence Card No."
employer = "Employer"
address = "Home Address"
phone = "Mobile"
email = "E-mail"

[formats]
"Date of Birth" = ["excel", "%d/%m/%Y", "%Y-%m-%d"]
'''
    return {"immigration": imm, "health": health, "police": police, "commerce": commerce}


# ------------------------------------------------------------------------------------------------
def generate(n_people, seed, out: Path, as_of: dt.datetime, chain_path: Path):
    t0 = time.time()
    ctx = Ctx(seed, as_of)
    ctx.sched = {}
    ctx.stations = {i: [f"{d[0]}{s}派出所" for s in random.Random(seed * 31 + i).sample(ND.STATION_NAMES, 3)]
                    for i, d in enumerate(ND.DISTRICTS)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "data").mkdir(exist_ok=True)
    (out / "configs" / "sources").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(chain_path, out / "configs" / "chain.toml")
    chain = load_chain(out / "configs" / "chain.toml")
    rng = ctx.rng

    n_trav = round(n_people * POPULATION["traveler"])
    n_emp = round(n_people * POPULATION["employee_only"])
    n_res = n_people - n_trav - n_emp
    travelers = []
    while len(travelers) < n_trav:
        members = build_party(ctx, n_trav - len(travelers))
        plan_party_times(ctx, members)
        for m in members:
            apply_break(ctx, m)
            tries = 0
            while near_boundary(ctx, m, chain) and tries < 50:
                for k in m.times:
                    m.times[k] -= dt.timedelta(minutes=7)
                tries += 1
                ctx.count["shifted_off_boundary"] += 1
            if m.brk is None and m.group and rng.random() < RATES["hotel_change"]:
                m.hotel_change = True
                ctx.count["hotel_change"] += 1
            if m.group == "FOR":
                m.visa = rng.choice(["L", "M", "Z", "Q2", "S1", "R"])
        travelers.extend(members)
    # employees among travelers
    for m in travelers:
        if m.is_child or m.age < 22:
            continue
        if (m.group == "FOR" and rng.random() < POPULATION["employee_share_foreign_travelers"]) or \
                (m.group in ("HKG", "MAC", "TWN") and rng.random() < POPULATION["employee_share_hkmt_travelers"]):
            make_employee(ctx, m)
    people = list(travelers)
    # non-travelers: commerce employees (and their police registrations), Chinese residents
    for _ in range(n_emp):
        if rng.random() < 0.85:
            g, nat = "FOR", FOREIGN_NAT_PICK(rng)
        else:
            g, nat = pick_group(rng)
            while g in ("CHN", "FOR"):
                g, nat = pick_group(rng)
        p = make_person(ctx, g, nat, "M" if rng.random() < 0.6 else "F", rand_dob(rng, as_of, 22, 62))
        p.kind = "employee_only"
        p.addr = new_addr(rng)
        make_employee(ctx, p)
        p.police_phone = ("CN", p.cn_phone) if p.cn_phone else p.home_phone
        people.append(p)
    for _ in range(n_res):
        p = make_person(ctx, "CHN", "CHN", "M" if rng.random() < 0.5 else "F", rand_dob(rng, as_of, 18, 80))
        if rng.random() < 0.7:  # residents with very common names: namesakes of travelers
            gh, syl = CN_COMMON[p.sex](rng)
            p.hz_giv = p.hzt_giv = gh
            p.lat_giv = [(Tok.plain("-".join(syl).upper()), False)]
        p.kind = "resident_only"
        p.addr = new_addr(rng)
        p.police_phone = ("CN", p.cn_phone)
        people.append(p)
    order = list(range(len(people)))
    rng.shuffle(order)
    for i, j in enumerate(order):
        people[j].pid = f"P{i + 1:07d}"
    ctx.people = people
    n_conflict_target = 0
    for p in people:
        if p.kind == "traveler":
            rows = gen_traveler_rows(ctx, p)
            if p.employee:
                rows += gen_commerce_rows(ctx, p)
            if rng.random() < RATES["identity_conflict"]:
                n_conflict_target += 1
                inject_conflict(ctx, p, rows)
        elif p.kind == "employee_only":
            gen_commerce_rows(ctx, p)
            if rng.random() < 0.6:
                for _ in range(2 if rng.random() < 0.2 else 1):
                    tt = as_of - dt.timedelta(days=rng.randint(5, 400), minutes=rng.randint(0, 1440), seconds=rng.randrange(60))
                    di = p.addr[0] if rng.random() < 0.8 else DIST_PICK(rng)
                    c = police_cols(ctx, p, "境外人员住宿登记", tt, di, rng.choice(ctx.stations[di]))
                    c["居住地址"] = addr_text(p, rng=rng)
                    ctx.add("police", p, c, tt, dob=c.pop("_dob"))
        else:
            for _ in range(2 if rng.random() < 0.3 else 1):
                tt = as_of - dt.timedelta(days=rng.randint(1, 60), minutes=rng.randint(0, 1440), seconds=rng.randrange(60))
                di = DIST_PICK(rng)
                kind = rng.choice(["临时住宿登记", "临时住宿登记", "居住证申领"])
                c = police_cols(ctx, p, kind, tt, di, rng.choice(ctx.stations[di]))
                c["居住地址"] = addr_text(p, rng=rng) if kind == "居住证申领" else ND.DISTRICTS[di][0] + rng.choice(ND.HOTEL_NAMES)
                ctx.add("police", p, c, tt, dob=c.pop("_dob"))
    assign_ids(ctx)
    t_gen = time.time() - t0

    # --- write exports
    files = []
    mid = as_of - dt.timedelta(days=POPULATION["arrival_window_days"] // 2)
    imm_a = [r for r in ctx.rows["immigration"] if r["t"] < mid]
    imm_b = [r for r in ctx.rows["immigration"] if r["t"] >= mid]
    for part, rows in (("a", imm_a), ("b", imm_b)):
        lo = min((r["t"] for r in rows), default=mid)
        hi = max((r["t"] for r in rows), default=mid)
        name = f"immigration_entries_{lo:%Y%m%d}-{hi:%Y%m%d}.csv"
        write_csv(out / "data" / name, IMM_COLS, rows, "utf-8")
        files.append(("immigration", name, rows))
    for part in ("port", "quarantine"):
        rows = [r for r in ctx.rows["health"] if r["file"] == part]
        name = f"health_{part}_{as_of:%Y%m%d}.csv"
        write_csv(out / "data" / name, HEALTH_COLS, rows, "utf-8-sig")
        files.append(("health", name, rows))
    name = f"police_registrations_{as_of:%Y%m%d}.csv"
    write_csv(out / "data" / name, POLICE_COLS, ctx.rows["police"], "gb18030")
    files.append(("police", name, ctx.rows["police"]))
    name = "commerce_foreign_employees.xlsx"
    write_xlsx(out / "data" / name, "外籍员工名册", COM_COLS, ctx.rows["commerce"], as_of)
    files.append(("commerce", name, ctx.rows["commerce"]))
    for src, text in source_configs().items():
        (out / "configs" / "sources" / f"{src}.toml").write_text(text, encoding="utf-8")

    # --- truth
    with open(out / "truth_entities.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["source", "record_id", "person_id"])
        for src, _, rows in files:
            for r in rows:
                w.writerow([src, r["id"], r["pid"]])
    flags = truth_flags(ctx, chain)
    flags.sort()
    with open(out / "truth_flags.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["person_id", "flag", "stage"])
        w.writerows(flags)
    elapsed = time.time() - t0
    write_manifest(ctx, out, files, flags, n_people, seed, as_of, elapsed, t_gen, n_conflict_target)
    return files, flags, elapsed


def expected_value_issues(ctx):
    """Birth dates no reading (not even day/month swapped) makes a date, and resident IDs (in a
    column whose type says resident ID) that fail GB 11643."""
    out = Counter()
    dob_col = {"health": "出生日期", "police": "出生日期", "commerce": "Date of Birth"}
    for src, rows in ctx.rows.items():
        for r in rows:
            c = r["cols"]
            col = dob_col.get(src)
            if col and isinstance(c[col], str) and c[col] and r["dob"] is None:
                out[(src, col)] += 1
            if c.get("证件类型", c.get("证件种类")) == "居民身份证" and not valid_resident_id(c["证件号码"]):
                out[(src, "证件号码")] += 1
    return out


def write_manifest(ctx, out, files, flags, n_people, seed, as_of, elapsed, t_gen, n_conflict_target):
    kinds = Counter(p.kind for p in ctx.people)
    groups = Counter(p.group for p in ctx.people if p.kind == "traveler")
    flag_codes = Counter(f[1] for f in flags)
    flag_stage = Counter((f[1], f[2]) for f in flags)
    flagged_people = len({f[0] for f in flags})
    L = [f"# Held-out synthetic exports (seed {seed}, {n_people} people)", "",
         f"- as-of time: {as_of:%Y-%m-%dT%H:%M}", f"- generated in {elapsed:.1f} s (rows built in {t_gen:.1f} s)",
         f"- people: {dict(kinds)}; travelers by group: {dict(groups)}",
         f"- records: {sum(len(r) for _, _, r in files)}", "",
         "## Files", "", "| source | file | rows |", "|---|---|---|"]
    for src, name, rows in files:
        L.append(f"| {src} | data/{name} | {len(rows)} |")
    L += ["", "Configs: `configs/sources/{immigration,health,police,commerce}.toml`, `configs/chain.toml` "
          "(copy of the default chain).", "Truth: `truth_entities.csv` (every record), `truth_flags.csv`.", "",
          "## Truth flags", "", "| flag | stage | persons |", "|---|---|---|"]
    for (code, stage), n in sorted(flag_stage.items()):
        L.append(f"| {code} | {stage} | {n} |")
    L += ["", f"By code: {dict(sorted(flag_codes.items()))}; persons with any flag: {flagged_people}; "
              f"travelers drawn for an identity conflict: {n_conflict_target}.", "",
          "## Configured rates", "", "Population and parties:", "", "| key | value |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in POPULATION.items()]
    L += ["", "Chain breaks (share of travelers; at most one each; a break whose stage is not yet due raises no flag):",
          "", "| break | share |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in BREAKS]
    L += ["", "Mess (per rendered value or record of the kind named):", "", "| key | rate |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in RATES.items()]
    L += ["", "## Realized counts", "", "| what | count |", "|---|---|"]
    L += [f"| {k} | {v} |" for k, v in sorted(ctx.count.items())]
    L += ["", "## Values written impossible on purpose (expected value issues on ingest)", "",
          "| source | column | values |", "|---|---|---|"]
    for (src, col), n in sorted(expected_value_issues(ctx).items()):
        L.append(f"| {src} | {col} | {n} |")
    L += ["", "Values written deliberately invalid (expected as value issues on ingest): phones counted as "
              "`phone_invalid` (dropped digit or unallocated 12x prefix), resident IDs with a typo (`doc_typo` on an "
              "ID fails the GB 11643 checksum), birth dates whose digit typo makes an impossible day or month. "
              "Foreign numbers written without their country code are valid but may be noted as unverified."]
    (out / "MANIFEST.md").write_text("\n".join(L) + "\n", encoding="utf-8")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--people", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--as-of", default="2026-03-31T00:00")
    ap.add_argument("--chain", type=Path, default=DEFAULT_CHAIN, help="chain rules to copy and evaluate")
    a = ap.parse_args(argv)
    as_of = dt.datetime.fromisoformat(a.as_of)
    files, flags, elapsed = generate(a.people, a.seed, a.out, as_of, a.chain)
    for src, name, rows in files:
        print(f"{src:12s} {name:48s} {len(rows):8d} rows")
    print(f"truth flags: {dict(sorted(Counter(f[1] for f in flags).items()))}")
    print(f"done in {elapsed:.1f} s -> {a.out}")


if __name__ == "__main__":
    main()
