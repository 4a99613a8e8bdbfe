"""privacy.py: masks (only the last N characters), keyed pseudonyms and their key; and the export
profiles that use them, on real exported files through the CLI: keep, lastN, pseudonym, drop, a
district's profile, the restrictive default, a missing or exposed key (exit 2, nothing written)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shutil
import unicodedata
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import CONFIGS, Cli, error_line, write_csv
from linkage.errors import ConfigError
from linkage.privacy import (KEY_ENV, KEY_FILE_ENV, MASK_CHOICES, PSEUDONYM_KINDS, ColumnMask, crockford_base32,
                             key_id, load_pseudonym_key, mask_last, parse_mask, pseudonym)
from test_export import all_files, export, flagged, person_row, read_csv, read_dicts  # noqa: F401

KEY = b"k" * 16 + b"-a test key, not a secret"
OTHER_KEY = b"k" * 16 + b"-another test key"
PSEUDONYM_FORMAT = re.compile(r"^PSN-[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$")
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@pytest.fixture(autouse=True)
def no_key_in_the_environment(monkeypatch):
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)


# ---- masks ---------------------------------------------------------------------------------------

@given(st.text(), st.integers(min_value=1, max_value=9))
def test_a_mask_keeps_only_the_last_n_characters(text, n):
    masked = mask_last(text, n)
    assert len(masked) == len(text)
    shown = n if len(text) > n else 0            # a value of n characters or fewer is never shown whole
    assert masked[:len(text) - shown] == "*" * (len(text) - shown)
    assert masked[len(text) - shown:] == text[len(text) - shown:]


@given(st.text(min_size=1, max_size=9).filter(lambda t: "*" not in t), st.integers(min_value=1, max_value=9))
def test_no_value_of_n_characters_or_fewer_is_revealed(text, n):
    if len(text) <= n:
        assert set(mask_last(text, n)) == {"*"}


def test_a_resident_id_keeps_its_last_four_only():
    assert mask_last("110105198503070019", 4) == "*" * 14 + "0019"       # no region, no birth date
    assert mask_last("张小明", 2) == "*小明" and mask_last("", 4) == ""


@pytest.mark.parametrize(("spelling", "mask"), [
    ("keep", ColumnMask("keep")), ("none", ColumnMask("keep")), ("last4", ColumnMask("mask", 4)),
    ("last2", ColumnMask("mask", 2)), ("last9", ColumnMask("mask", 9)), ("pseudonym", ColumnMask("pseudonym")),
    ("drop", ColumnMask("drop")), ("hidden", ColumnMask("hidden")),
])
def test_mask_spellings(spelling, mask):
    assert parse_mask(spelling) == mask
    assert parse_mask(str(mask)) == mask


@pytest.mark.parametrize("spelling", ["full", "last0", "last10", "first4", "LAST4", "hash", "sha256", ""])
def test_unknown_mask_spellings_list_the_valid_ones(spelling):
    with pytest.raises(ValueError) as caught:
        parse_mask(spelling)
    assert str(caught.value) == f"unknown mask '{spelling}'; valid masks: {MASK_CHOICES}"


# ---- pseudonyms ------------------------------------------------------------------------------------

def crockford_oracle(data: bytes) -> str:
    """Crockford base32 the long way round: the bits as one integer, 5 at a time."""
    number, digits = int.from_bytes(data, "big"), len(data) * 8 // 5
    return "".join(CROCKFORD[(number >> (5 * (digits - 1 - i))) & 31] for i in range(digits))


def decode(code: str) -> bytes:
    return int("".join(f"{CROCKFORD.index(c):05b}" for c in code.removeprefix("PSN-").replace("-", "")),
               2).to_bytes(10, "big")


@given(st.binary(min_size=5, max_size=40).filter(lambda b: len(b) % 5 == 0))
def test_crockford_base32_matches_the_long_way_round(data):
    assert crockford_base32(data) == crockford_oracle(data)


kinds = st.sampled_from(sorted(set(PSEUDONYM_KINDS.values())))
values = st.text(min_size=1).filter(lambda t: t.strip())
keys = st.binary(min_size=16, max_size=64)


@given(keys, kinds, values)
def test_a_pseudonym_is_the_keyed_hmac_of_the_value_in_readable_form(key, kind, value):
    code = pseudonym(key, kind, value)
    assert PSEUDONYM_FORMAT.match(code) and code == pseudonym(key, kind, value)      # deterministic
    message = b"linkage pseudonym v1\x00" + kind.encode() + b"\x00" + unicodedata.normalize("NFC", value).strip().encode()
    assert decode(code) == hmac.new(key, message, hashlib.sha256).digest()[:10]


@given(keys, keys, kinds, values)
def test_another_key_gives_another_pseudonym(key, other, kind, value):
    if key != other:
        assert pseudonym(key, kind, value) != pseudonym(other, kind, value)


@given(keys, values)
def test_kinds_are_kept_apart(key, value):
    codes = {pseudonym(key, kind, value) for kind in set(PSEUDONYM_KINDS.values())}
    assert len(codes) == len(set(PSEUDONYM_KINDS.values()))


def test_no_plain_hash_and_no_value_in_the_pseudonym():
    value = "E12345678"
    code = pseudonym(KEY, "passport", value)
    plain = [hashlib.sha256(value.encode()).digest()[:10], hashlib.md5(value.encode()).digest()[:10]]
    assert decode(code) not in plain and "5678" not in code
    assert pseudonym(KEY, "passport", "") == ""
    assert pseudonym(KEY, "name", "Jose\u0301") == pseudonym(KEY, "name", "Jos\u00e9")  # one text, two spellings
    assert key_id(KEY) == key_id(KEY) != key_id(OTHER_KEY) and KEY.decode() not in key_id(KEY)


# ---- the key -------------------------------------------------------------------------------------

def key_file(tmp_path: Path, mode: int, text: bytes = KEY + b"\n") -> Path:
    path = tmp_path / "pseudonym.key"
    path.write_bytes(text)
    path.chmod(mode)
    return path


def test_the_key_from_the_environment_or_an_owner_only_file(tmp_path):
    assert load_pseudonym_key("p", {KEY_ENV: KEY.decode()}) == KEY
    assert load_pseudonym_key("p", {KEY_FILE_ENV: str(key_file(tmp_path, 0o600))}) == KEY   # newline not part of it
    assert load_pseudonym_key("p", {KEY_FILE_ENV: str(key_file(tmp_path, 0o400))}) == KEY


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, "p needs a pseudonym key: set LINKAGE_PSEUDONYM_KEY or LINKAGE_PSEUDONYM_KEY_FILE"),
    ({KEY_ENV: "tiny-key"}, "p: the key in LINKAGE_PSEUDONYM_KEY is shorter than 16 bytes"),
    ({KEY_ENV: KEY.decode(), KEY_FILE_ENV: "x"}, "both LINKAGE_PSEUDONYM_KEY and LINKAGE_PSEUDONYM_KEY_FILE are set"),
    ({KEY_FILE_ENV: "/nonexistent/pseudonym.key"}, "LINKAGE_PSEUDONYM_KEY_FILE: /nonexistent/pseudonym.key: file not found"),
])
def test_a_missing_or_weak_key_is_a_config_error(environ, expected):
    with pytest.raises(ConfigError) as caught:
        load_pseudonym_key("p", environ)
    assert expected in str(caught.value) and "tiny-key" not in str(caught.value)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o602])
def test_a_key_file_others_can_read_or_write_is_refused(tmp_path, mode):
    path = key_file(tmp_path, mode)
    with pytest.raises(ConfigError) as caught:
        load_pseudonym_key("p", {KEY_FILE_ENV: str(path)})
    assert str(caught.value) == (f"{KEY_FILE_ENV}: {path} can be read or written by others (mode {mode:04o}); "
                                 f"make it owner-only: chmod 600 {path}")
    assert KEY.decode() not in str(caught.value)


# ---- profiles on real exports ---------------------------------------------------------------------

ALL_MODES = """
default_profile = "modes"
[profiles.modes]
language = "en"
columns = ["person_id", "name", "dob", "sex", "phone", "passport", "id_number", "permit_no", "district"]
[profiles.modes.mask]
name = "keep"
dob = "drop"
sex = "hidden"
phone = "last2"
passport = "pseudonym"
id_number = "pseudonym"
permit_no = "last4"
district = "drop"
"""

JOINABLE = """
[profiles.joinable_zh]
columns = ["person_id", "passport", "id_number", "phone"]
mask = { passport = "pseudonym", id_number = "pseudonym", phone = "pseudonym" }
[profiles.joinable_en]
language = "en"
columns = ["code", "phone", "passport", "stage"]
mask = { phone = "pseudonym", passport = "pseudonym" }
"""

DISTRICT = """
[profiles.chaoyang]
language = "en"
columns = ["person_id", "district", "name"]
district = "朝阳区"
mask = { name = "keep" }
"""


def export_toml(cli: Cli, *profiles: str, default: str | None = None) -> Path:
    path = cli.config_dir / "export.toml"
    text = "".join(profiles)
    if default:
        text = f'default_profile = "{default}"\n' + text.replace('default_profile = "modes"\n', "")
    path.write_text(text, encoding="utf-8")
    return path


def test_each_mode_in_an_exported_csv(flagged, tmp_path, monkeypatch):
    export_toml(flagged, ALL_MODES)
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    out = tmp_path / "out"
    export(flagged, out)
    rows = read_csv(out / "朝阳区.csv")
    answers = ["previous_answer", "outcome", "resolved_on", "comment", "answered_by", "flag_key"]
    assert rows[0] == ["person_id", "name", "sex", "phone", "passport", "id_number", "permit_no", *answers]  # dropped: gone
    p001 = person_row(out / "朝阳区.csv", "P001", "person_id")
    assert {k: v for k, v in p001.items() if k not in answers} == {
                    "person_id": "P001", "name": "张小明", "sex": "", "phone": "***********00",   # of 138 0013 8000
                    "passport": pseudonym(KEY, "passport", "E12345678"),
                    "id_number": pseudonym(KEY, "id_number", "110105198503070019"), "permit_no": "*****5432"}
    text = "".join((out / name).read_text(encoding="utf-8-sig") for name in ("朝阳区.csv", "海淀区.csv", "unassigned.csv"))
    for secret in ("1985-03-07", "E12345678", "110105198503070019", "13800138000", KEY.decode()):
        assert secret not in text
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["pseudonym_key_id"] == key_id(KEY)


def test_two_profiles_with_one_key_can_be_joined_on_pseudonyms(flagged, tmp_path, monkeypatch):
    export_toml(flagged, JOINABLE, default="joinable_zh")
    monkeypatch.setenv(KEY_ENV, KEY.decode())
    export(flagged, tmp_path / "zh", "--profile", "joinable_zh")
    export(flagged, tmp_path / "en", "--profile", "joinable_en")
    zh = {r["护照号"]: r for r in read_dicts(tmp_path / "zh" / "朝阳区.csv") if r["护照号"]}
    en = read_dicts(tmp_path / "en" / "朝阳区.csv")
    joined = [(zh[r["passport"]]["人员编号"], r["code"]) for r in en if r["passport"] in zh]
    assert joined == [("P001", "MISSING_STAGE"), ("P002", "EARLY_RELEASE")]
    assert {r["phone"] for r in en} >= {zh[p]["电话"] for p in zh}
    manifests = [json.loads((tmp_path / d / "manifest.json").read_text(encoding="utf-8")) for d in ("zh", "en")]
    assert manifests[0]["pseudonym_key_id"] == manifests[1]["pseudonym_key_id"]

    monkeypatch.setenv(KEY_ENV, OTHER_KEY.decode())
    export(flagged, tmp_path / "other", "--profile", "joinable_en")
    other = read_dicts(tmp_path / "other" / "朝阳区.csv")
    assert [r["passport"] for r in other if r["passport"]] and not {r["passport"] for r in other} & set(zh)
    assert json.loads((tmp_path / "other" / "manifest.json").read_text(encoding="utf-8"))["pseudonym_key_id"] \
        != manifests[0]["pseudonym_key_id"]


def test_the_key_file_works_like_the_variable(flagged, tmp_path, monkeypatch):
    export_toml(flagged, JOINABLE, default="joinable_en")
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file(tmp_path, 0o600)))
    export(flagged, tmp_path / "out")
    assert person_row(tmp_path / "out" / "朝阳区.csv", "MISSING_STAGE", "code")["passport"] == \
        pseudonym(KEY, "passport", "E12345678")


def test_pseudonyms_without_a_key_write_nothing(flagged, tmp_path):
    path = export_toml(flagged, JOINABLE, default="joinable_en")
    result = flagged("export", "discrepancies", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert error_line(result) == (
        "Error: export profile 'joinable_en' (pseudonyms in phone, passport) needs a pseudonym key: set "
        "LINKAGE_PSEUDONYM_KEY or LINKAGE_PSEUDONYM_KEY_FILE (a file only its owner can read, holding a random key "
        "of at least 16 bytes, e.g. 32 from a password generator)")
    assert not (tmp_path / "out").exists() and path.exists()


def test_a_key_file_others_can_read_is_exit_2_and_nothing_written(flagged, tmp_path, monkeypatch):
    export_toml(flagged, JOINABLE, default="joinable_en")
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file(tmp_path, 0o644)))
    result = flagged("export", "discrepancies", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "chmod 600" in error_line(result)
    assert KEY.decode() not in result.output and not (tmp_path / "out").exists()


def test_the_nightly_run_checks_the_key_before_anything(flagged, tmp_path):
    configs = tmp_path / "shipped"
    shutil.copytree(CONFIGS, configs)
    (configs / "export.toml").write_text('default_profile = "joinable_en"\n' + JOINABLE, encoding="utf-8")
    before = all_files(flagged.workspace)
    result = Cli(flagged.workspace, configs)("run")
    assert result.exit_code == 2 and "needs a pseudonym key" in error_line(result)
    assert all_files(flagged.workspace) == before


def test_a_district_profile_writes_its_district_only(flagged, tmp_path):
    export_toml(flagged, DISTRICT, default="chaoyang")
    out = tmp_path / "out"
    result = export(flagged, out)
    assert all_files(out) == ["manifest.json", "朝阳区.csv"]
    assert [r["person_id"] for r in read_dicts(out / "朝阳区.csv")] == ["P004", "P001", "P003", "P002"]
    assert {r["district"] for r in read_dicts(out / "朝阳区.csv")} == {"朝阳区"}
    assert "Wrote 4 flags" in result.stdout
    export(flagged, tmp_path / "same", "--district", "朝阳区")
    assert all_files(tmp_path / "same") == ["manifest.json", "朝阳区.csv"]

    result = flagged("export", "discrepancies", "--out", str(tmp_path / "other"), "--district", "海淀区")
    assert result.exit_code == 2
    assert error_line(result) == ("Error: export profile 'chaoyang' writes district 朝阳区 only; "
                                  "--district 海淀区 asks for another")
    assert not (tmp_path / "other").exists()


def test_the_default_profile_shows_no_name_birth_date_or_whole_number(flagged, tmp_path):
    """Without export.toml (the built-in profiles) and with the shipped one."""
    numbers = ["E12345678", "110105198503070019", "C98765432", "+8613800138000", "+8613900000000"]
    names = ["ZHANG XIAOMING", "张小明", "NAME", "1985-03-07", "1990-02-01"]
    for config_dir in (flagged.config_dir, CONFIGS):
        cli = Cli(flagged.workspace, config_dir)
        out = tmp_path / config_dir.name
        export(cli, out)
        assert json.loads((out / "manifest.json").read_text(encoding="utf-8"))["profile"] == "restricted"
        header = read_csv(out / "朝阳区.csv")[0]
        assert not {"姓名", "出生日期", "性别", "国籍", "通行证号"} & set(header) and "护照号" in header
        text = "".join(p.read_text(encoding="utf-8-sig") for p in out.glob("*.csv"))
        assert not [v for v in numbers + names if v in text]
        assert person_row(out / "朝阳区.csv", "P001")["护照号"] == "*****5678"


def disclosure(mask: ColumnMask) -> int:
    """How much of a value a mask shows: nothing < a pseudonym < its last N characters < all of it."""
    return {"drop": 0, "hidden": 0, "pseudonym": 1, "mask": 1 + mask.shown, "keep": 100}[mask.mode]


def test_the_default_is_the_most_restrictive_profile():
    from linkage.config import EXPORT_PERSON_COLUMNS, ExportConfig, load_export_config

    for config in (ExportConfig(), load_export_config(CONFIGS)[0]):
        default = config.profiles[config.default_profile]
        for name, profile in config.profiles.items():
            for column in EXPORT_PERSON_COLUMNS:
                shown = disclosure(profile.mask_of(column)) if column in profile.columns else 0
                assert disclosure(default.mask_of(column)) * (column in default.columns) <= shown, (name, column)
        assert not default.pseudonymized       # needs no key: `make demo` and a fresh clone work as they are


@pytest.mark.parametrize(("toml", "expected"), [
    ('[profiles.x]\ncolumns = ["sex"]\nmask = { sex = "pseudonym" }\n',
     "key 'profiles.x.mask': column 'sex': pseudonym is offered for passport, id_number, permit_no, phone, name, dob"),
    ('[profiles.x]\ncolumns = ["passport"]\nmask = { passport = "sha256" }\n',
     f"key 'profiles.x.mask.passport': unknown mask 'sha256'; valid masks: {MASK_CHOICES}"),
    ('[profiles.x]\ncolumns = ["passport"]\ndistrict = " "\n', "key 'profiles.x.district': must name a district"),
])
def test_bad_masks_name_the_file_profile_column_and_choices(config_dir, tmp_path, toml, expected):
    path = config_dir / "export.toml"
    path.write_text('default_profile = "x"\n' + toml, encoding="utf-8")
    result = Cli(tmp_path / "ws", config_dir)("export", "discrepancies", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert error_line(result).startswith(f"Error: {path}: ") and expected in error_line(result)
    assert not (tmp_path / "out").exists()


# ---- linkage rejects --out: the same mask ----------------------------------------------------------

def test_rejects_out_shows_the_last_two_characters_only(cli, tmp_path):
    (cli.config_dir / "sources" / "health.toml").write_text(
        'name = "health"\nformat = "csv"\nrecord_id = "id"\nphone_region = "CN"\n'
        '[fields]\nfull_name = "name"\nphone = "phone"\nnationality = "nationality"\n', encoding="utf-8")
    data = write_csv(tmp_path / "health.csv", "id,name,phone,nationality",
                     ["H1,WANG Fang,4711,Atlantis", ",LI Na,13900139000,CHN"])
    assert cli("ingest", "--source", "health", str(data)).exit_code == 0
    target = tmp_path / "rejects.csv"
    assert cli("rejects", "--out", str(target)).exit_code == 0
    assert [(row[5], row[7]) for row in read_csv(target)[1:]] == [("nationality", "******is"), ("phone", "**11"),
                                                                  ("", "")]
    text = target.read_text(encoding="utf-8-sig")
    assert "4711" not in text and "Atlantis" not in text and "13900139000" not in text
