"""Matching encoded records (see encode.py): their filters and tokens as arrays, the plaintext
records encoded in memory with the same key, Dice comparisons, and token blocking rules.

When the workspace holds encoded records, `prepare_encoded` adds each record's tokens to
`match_records` (columns `tok.KIND`, lists) for blocking, and returns per record number its
filters ((records, words) uint64), their bit counts and which records came encoded. A pair is
compared by these comparisons only when either record came encoded; a pair of two plaintext
records gets level 0 (neutral) in all of them and keeps exactly the plaintext comparisons, while
an encoded record has no plaintext name, date or number, so it is level 0 in those.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import numpy as np
import polars as pl
import pyarrow as pa

from ..encode import KEY_ENV, KEY_FILE_ENV, Encoder, Params, encode_records, key_check, load_secret
from ..errors import InputError
from ..sql import quote_ident, quote_literal
from ..workspace import Workspace
from .compare import Coded, Comparison, is_identifier, select_levels, value_frequencies
from .prepare import RecordArrays

DICE_LABELS = ("missing", "different", "dice >= 0.7", "dice >= 0.85", "dice >= 0.95", "identical")
TOKEN_LABELS = ("missing", "different", "exact")
DICE_THRESHOLDS = (0.95, 0.85, 0.7)
# Filter field -> comparison name; the token that says "identical" for it, if any.
DOC_FIELDS = ("doc.passport", "doc.id", "doc.permit")
FILTER_COMPARISONS = {"name": ("encoded.name", "name"), "local_name": ("encoded.local_name", "local_name"),
                      "dob": ("encoded.dob", "dob"), "documents": ("encoded.documents", "documents"),
                      "phone": ("encoded.phone", "phones"), "email": ("encoded.email", "email"),
                      "address": ("encoded.address", None), "employer": ("encoded.employer", None)}
TOKEN_COMPARISONS = {"sex": "encoded.sex", "nationality": "encoded.nationality"}
HOUSEHOLD = {"encoded.phone", "encoded.address", "encoded.email", "encoded.employer"}
# Which comparisons a blocking token makes uninformative for the pairs of its rule.
TOKEN_BLOCKS = {"documents": {"encoded.documents"}, "phones": {"encoded.phone"}, "email": {"encoded.email"},
                "name": {"encoded.name"}, "local_name": {"encoded.local_name"}, "dob": {"encoded.dob"},
                "dob_phonetic": {"encoded.dob", "encoded.name"}, "year_phonetic": {"encoded.dob", "encoded.name"},
                "dob_sex": {"encoded.dob", "encoded.sex"}, "sex": {"encoded.sex"},
                "nationality": {"encoded.nationality"}, "dob_word": {"encoded.dob", "encoded.name"},
                "year_word": {"encoded.dob", "encoded.name"}}
SLOTS = 3   # documents and phones compared in up to three token slots


def token_comparisons(key: str) -> set[str]:
    """The comparisons a blocking key `tok.KIND` is taken from."""
    kind = key.partition(":")[0][4:]
    if kind.startswith("extra."):
        return {f"encoded.{kind}"}
    if kind.startswith(("word_extra.", "phonetic_extra.")):
        return {"encoded.name", f"encoded.extra.{kind.partition('.')[2]}"}
    return TOKEN_BLOCKS.get(kind, {f"encoded.{kind}"})


@dataclass
class EncodedArrays:
    encoded: np.ndarray                          # bool per record: it came encoded
    filters: dict[str, np.ndarray]               # field -> (records, words) uint64
    counts: dict[str, np.ndarray]                # field -> bits set per record (0 = no value)
    tokens: dict[str, Coded]                     # single tokens: sex, nationality, dob, name, ...
    token_slots: dict[str, list[Coded]] = field(default_factory=dict)   # documents, phones: shared dictionary
    token_kinds: list[str] = field(default_factory=list)


def encoded_present(ws: Workspace) -> bool:
    return bool(ws.scalar("encoded records", "SELECT count(*) FROM records WHERE bloom IS NOT NULL"))


def prepare_encoded(ws: Workspace, relation: str = "match_records", require_key: bool = True) -> EncodedArrays | None:
    """None when no record came encoded; else the arrays, with `relation` (shaped like
    `match_records`, a temp table) given the token columns. Plaintext records are encoded too,
    which needs the key: exit 2 without it, or (not `require_key`: explaining a pair) they are
    left without filters."""
    if not encoded_present(ws):
        return None
    stored = ws.rows("encoding parameters", "SELECT DISTINCT params, key_check FROM encodings")
    if len(stored) != 1:
        raise InputError("the encoded sources in the workspace were made with different parameters or keys; "
                         "encode them again with one key and one linkage version")
    params, check = Params(**json.loads(stored[0][0])), stored[0][1]
    fields = [r[0] for r in ws.rows("encoded fields", "SELECT DISTINCT unnest(map_keys(bloom)) FROM records ORDER BY 1")]
    kinds = [r[0] for r in ws.rows("token kinds", "SELECT DISTINCT unnest(map_keys(tokens)) FROM records ORDER BY 1")]
    extras = [f[6:] for f in fields if f.startswith("extra.")]
    n = ws.scalar("count match records", f"SELECT count(*) FROM {relation}")
    words = params.stored_bits // 64
    ws.run("encoded match records", f"""
        CREATE OR REPLACE TEMP TABLE match_encoded AS
        SELECT m.rid, r.bloom, r.tokens FROM {relation} m JOIN records r USING (source, record_id)
        WHERE r.bloom IS NOT NULL""")
    encoded = np.zeros(n, dtype=bool)
    rid = ws.run("encoded record numbers", "SELECT rid FROM match_encoded").fetchnumpy()["rid"]
    encoded[np.asarray(rid)] = True
    filters = {f: np.zeros((n, words), dtype=np.uint64) for f in fields}
    if fields:
        table = ws.run("encoded filters", "SELECT rid, " + ", ".join(
            f"bloom[{quote_literal(f)}] AS {quote_ident(f)}" for f in fields) + " FROM match_encoded").to_arrow_table()
        rids = table.column("rid").to_numpy()
        for f in fields:
            _fill(filters[f], rids, table.column(f), words)
    plain = n - int(encoded.sum())
    token_columns = {k: f"tokens[{quote_literal(k)}]" for k in kinds}
    secret = load_secret() if plain and (require_key or os.environ.get(KEY_ENV) or os.environ.get(KEY_FILE_ENV)) else None
    if secret is not None:
        if key_check(secret) != check:
            raise InputError("the Bloom-filter key (LINKAGE_BLOOM_KEY / LINKAGE_BLOOM_KEY_FILE) is not the key the "
                             "encoded sources were made with; plaintext records cannot be compared with them")
        extra_cols = "".join(f", extra[{quote_literal(e)}] AS {quote_ident('extra.' + e)}" for e in extras)
        frame = pl.from_arrow(ws.run("plaintext match records", f"""
            SELECT rid, name_key, local_name, family_phonetic, given_phonetic, sex, dob, nationality, id_number,
                   passport, permit_no,
                   coalesce(doc_numbers, []) AS doc_numbers, phones, email, address, employer{extra_cols}
            FROM {relation} WHERE rid NOT IN (SELECT rid FROM match_encoded) ORDER BY rid""").to_arrow_table())
        result = encode_records(frame, Encoder(secret, params), extras)
        rids = frame.get_column("rid").to_numpy()
        for f in fields:
            if f in result.filters:
                filters[f][rids] = result.filters[f]
        tokens = pl.DataFrame({"rid": rids, **{f"tok.{k}": result.tokens[k] for k in kinds if k in result.tokens}})
    else:
        tokens = pl.DataFrame({"rid": np.zeros(0, dtype=np.int32)})
    ws.register("plaintext_tokens", tokens.to_arrow())
    selects = ", ".join(f"{token_columns[k]} AS {quote_ident('tok.' + k)}" for k in kinds)
    ws.run("tokens of the match records", f"""
        CREATE OR REPLACE TEMP TABLE match_tokens AS
        SELECT rid{', ' + selects if selects else ''} FROM match_encoded
        UNION ALL BY NAME SELECT * FROM plaintext_tokens""")
    ws.unregister("plaintext_tokens")
    columns = ", ".join(f"t.{quote_ident('tok.' + k)}" for k in kinds)
    ws.run("match records with tokens", f"""
        CREATE OR REPLACE TEMP TABLE {relation} AS
        SELECT m.*{', ' + columns if columns else ''} FROM {relation} m LEFT JOIN match_tokens t USING (rid)""")
    ws.run("drop encoded temp tables", "DROP TABLE match_encoded; DROP TABLE match_tokens")
    counts = {f: np.bitwise_count(bits).sum(axis=1, dtype=np.int32) for f, bits in filters.items()}
    single = [k for k in kinds if k not in ("documents", "phones")]
    fetched = ws.run("tokens for comparison", "SELECT rid, " + ", ".join(
        [f"{quote_ident('tok.' + k)}[1] AS {quote_ident(k)}" for k in single]
        + [f"{quote_ident('tok.' + k)}[{i + 1}] AS {quote_ident(f'{k}#{i}')}"
           for k in ("documents", "phones") if k in kinds for i in range(SLOTS)]) + f" FROM {relation} ORDER BY rid"
                     ).to_arrow_table()
    from .prepare import _encode, _encode_shared
    tokens_ = {k: _encode(fetched.column(k)) for k in single}
    slots = {}
    for k in ("documents", "phones"):
        if k in kinds:
            names = tuple(f"{k}#{i}" for i in range(SLOTS))
            shared = _encode_shared(fetched, names, n)
            slots[k] = [shared[c] for c in names]
    return EncodedArrays(encoded, filters, counts, tokens_, slots, kinds)


def _fill(out: np.ndarray, rids: np.ndarray, column: pa.ChunkedArray, words: int) -> None:
    array = column.combine_chunks()
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    if not valid.any():
        return
    values = array.filter(pa.array(valid))
    data = b"".join(values.to_pylist())
    out[rids[valid]] = np.frombuffer(data, dtype=np.uint64).reshape(-1, words)


def dice(a: np.ndarray, b: np.ndarray, count_a: np.ndarray, count_b: np.ndarray) -> np.ndarray:
    """Dice similarity of packed filters, row by row: 2 |a AND b| / (|a| + |b|) (0 where both empty)."""
    shared = np.bitwise_count(a & b).sum(axis=1, dtype=np.int32)
    total = count_a + count_b
    return np.where(total > 0, 2.0 * shared / np.maximum(total, 1), 0.0)


@dataclass
class DiceComparison(Comparison):
    """A field's filters by Dice similarity, for pairs with an encoded record; `token` (a token
    kind) shared counts as identical, as a Dice of 1 does."""

    field: str = ""
    token: str | None = None
    term_frequency: bool = False

    @property
    def fields(self) -> tuple[str, ...]:
        """The filters compared: documents kind by kind (the best kind counts), else the field."""
        return DOC_FIELDS if self.field == "documents" else (self.field,)

    def levels(self, data: RecordArrays, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        enc: EncodedArrays | None = data.encoded
        out = np.zeros(len(left), dtype=np.int8)
        fields = [f for f in self.fields if enc is not None and f in enc.filters]
        if not fields:
            return out
        either = enc.encoded[left] | enc.encoded[right]
        present = np.zeros(len(left), dtype=bool)
        for f in fields:
            counts = enc.counts[f]
            present |= either & (counts[left] > 0) & (counts[right] > 0)
        todo = np.nonzero(present)[0]
        if not len(todo):
            return out
        a, b = left[todo], right[todo]
        score = np.zeros(len(todo))
        for f in fields:
            counts, bits = enc.counts[f], enc.filters[f]
            both = np.nonzero((counts[a] > 0) & (counts[b] > 0))[0]
            score[both] = np.maximum(score[both], dice(bits[a[both]], bits[b[both]], counts[a[both]], counts[b[both]]))
        same = score >= 1.0
        differ = np.zeros(len(todo), dtype=bool)
        if self.field == "documents" and "id_number" in enc.tokens:
            # Two different checksum-valid resident IDs say two people however alike (twins' IDs
            # differ in two digits), as the plaintext comparison's "resident IDs differ" level.
            ids = enc.tokens["id_number"].codes
            differ = (ids[a] >= 0) & (ids[b] >= 0) & (ids[a] != ids[b])
        if self.token in enc.tokens:
            coded = enc.tokens[self.token].codes
            same |= (coded[a] >= 0) & (coded[a] == coded[b])
        elif self.token in enc.token_slots:
            for x in enc.token_slots[self.token]:
                for y in enc.token_slots[self.token]:
                    same |= (x.codes[a] >= 0) & (x.codes[a] == y.codes[b])
        high, mid, low = DICE_THRESHOLDS
        out[todo] = select_levels([(5, same & ~differ), (1, differ), (4, score >= high), (3, score >= mid),
                                   (2, score >= low)], np.ones(len(todo), dtype=bool))
        return out

    def term_frequencies(self, data: RecordArrays) -> np.ndarray | None:
        """Identical names and birth dates weigh by how common the value is (its token's share)."""
        if not self.term_frequency:
            return None
        if self.tf_slot in data.frequencies:
            return data.frequencies[self.tf_slot]
        enc: EncodedArrays | None = data.encoded
        if enc is None or self.token not in enc.tokens:
            return np.zeros(data.n)
        return data.derived(f"tf:{self.name}", lambda: value_frequencies(enc.tokens[self.token]))

    @property
    def tf_slot(self) -> str:
        return self.name

    def tf_values(self, data: RecordArrays) -> np.ndarray:
        """The tokens (never plaintext) whose frequencies are stored."""
        enc: EncodedArrays | None = data.encoded
        if enc is None or self.token not in enc.tokens:
            return np.full(data.n, None, dtype=object)
        coded = enc.tokens[self.token]
        out = np.full(data.n, None, dtype=object)
        present = coded.codes >= 0
        out[present] = coded.values[coded.codes[present]]
        return out


@dataclass
class TokenComparison(Comparison):
    """A token compared exactly (sex, nationality), for pairs with an encoded record."""

    token: str = ""

    def levels(self, data: RecordArrays, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        enc: EncodedArrays | None = data.encoded
        if enc is None or self.token not in enc.tokens:
            return np.zeros(len(left), dtype=np.int8)
        codes = enc.tokens[self.token].codes
        a, b = codes[left], codes[right]
        present = (enc.encoded[left] | enc.encoded[right]) & (a >= 0) & (b >= 0)
        return select_levels([(2, a == b)], present)


def identity_codes(data: RecordArrays, names: list[str]) -> list[tuple[str, np.ndarray, object]]:
    """The identity guard's fields of encoded records (match/cluster.py): with `id_number`, the
    resident-ID token (two different ones contradict, as plaintext IDs do). Codes are given to
    encoded records only, so a group of plaintext records is judged as before. Birth dates are not
    guarded on encoded records: the plaintext guard calls dates different only beyond a typo, a
    day/month swap or a year, which filters cannot tell apart from other dates well enough (tried:
    Dice below 0.7 as a contradiction made 152 identity-conflict flags where the truth has 68, at
    5,000 people)."""
    enc: EncodedArrays | None = data.encoded
    out: list[tuple[str, np.ndarray, object]] = []
    if enc is None:
        return out
    if "id_number" in names and "id_number" in enc.tokens:
        out.append(("encoded id_number", np.where(enc.encoded, enc.tokens["id_number"].codes, -1), None))
    return out


def encoded_comparisons(data: RecordArrays) -> list[Comparison]:
    """A Dice comparison per encoded field and a token comparison for sex and nationality."""
    enc: EncodedArrays | None = data.encoded
    if enc is None:
        return []
    out: list[Comparison] = []
    fields = {("documents" if f in DOC_FIELDS else f) for f in enc.filters if (enc.counts[f] > 0).any()}
    for f in sorted(fields):
        out.append(_dice_comparison(f))
    for kind, name in TOKEN_COMPARISONS.items():
        if kind in enc.tokens and (enc.tokens[kind].codes >= 0).any():
            out.append(TokenComparison(name, TOKEN_LABELS, None, "token", token=kind))
    return out


def comparison_for(name: str, kind: str) -> Comparison:
    """The encoded comparison `name` of a saved model (kind 'dice' or 'token')."""
    if kind == "token":
        token = next(k for k, n in TOKEN_COMPARISONS.items() if n == name)
        return TokenComparison(name, TOKEN_LABELS, None, "token", token=token)
    return _dice_comparison(next((f for f, (n, _) in FILTER_COMPARISONS.items() if n == name), name[len("encoded."):]))


TF_FIELDS = ("name", "dob")   # identical values weigh by their frequency, as the plaintext name and date do


def _dice_comparison(f: str) -> DiceComparison:
    name, token = FILTER_COMPARISONS.get(f, (f"encoded.{f}", f if f.startswith("extra.") else None))
    tf = f in TF_FIELDS
    return DiceComparison(name, DICE_LABELS, 5 if tf else None, "dice", field=f, token=token, term_frequency=tf)


def encoded_groups(data: RecordArrays) -> set[str]:
    """Encoded comparisons of what households and groups share (phones, addresses, non-identifier extras)."""
    enc: EncodedArrays | None = data.encoded
    if enc is None:
        return set()
    out = set(HOUSEHOLD)
    for kind, coded in enc.tokens.items():
        if kind.startswith("extra.") and not is_identifier(coded):
            out.add(f"encoded.{kind}")
    return out


def token_rules(data: RecordArrays) -> list[tuple[str, list[str]]]:
    """Candidate blocking rules on tokens (the encoded counterparts of the default rules)."""
    enc: EncodedArrays | None = data.encoded
    if enc is None:
        return []

    def has(kind: str) -> bool:
        if kind in enc.token_slots:
            return bool((enc.token_slots[kind][0].codes >= 0).any())
        return kind in enc.tokens and bool((enc.tokens[kind].codes >= 0).any())

    out = []
    for name, on in (("enc_document", ["tok.documents"]), ("enc_phone", ["tok.phones"]), ("enc_email", ["tok.email"]),
                     ("enc_name", ["tok.name"]), ("enc_local_name", ["tok.local_name"]), ("enc_dob", ["tok.dob"]),
                     ("enc_dob_phonetic", ["tok.dob_phonetic"]), ("enc_year_phonetic", ["tok.year_phonetic"]),
                     ("enc_dob_sex", ["tok.dob_sex"]), ("enc_dob_name", ["tok.dob", "tok.name"]),
                     ("enc_dob_name_word", ["tok.dob_word"]), ("enc_year_name_word", ["tok.year_word"])):
        if all(has(key[4:]) for key in on):
            out.append((name, on))
    for kind, coded in enc.tokens.items():
        if not kind.startswith("extra.") or not (coded.codes >= 0).any():
            continue
        extra = kind[6:]
        for combined in ("word", "phonetic"):
            if has(f"{combined}_{kind}"):
                out.append((f"enc_{extra}_name_{combined}", [f"tok.{combined}_{kind}"]))
        if is_identifier(coded):
            out.append((f"enc_extra_{extra}", [f"tok.{kind}"]))
        else:
            if has("year_phonetic"):
                out.append((f"enc_{extra}_year_phonetic", [f"tok.{kind}", "tok.year_phonetic"]))
            if has("dob"):
                out.append((f"enc_{extra}_dob", [f"tok.{kind}", "tok.dob"]))
    return out
