"""Configuration files: pydantic models for every TOML file and their loading.

A bad file becomes a ConfigError whose message names the file, the key and the valid
choices. Fields that model.toml and chain.toml name are checked against the fields the source configs
map when those files are loaded. Checks that need the data (a configured column absent from an
export) live in ingest, which reports them the same way.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .standardize.dates import EXCEL, check_format

CANONICAL_FIELDS = (
    "full_name",
    "family_name",
    "given_name",
    "local_name",
    "sex",
    "dob",
    "nationality",
    "passport",
    "id_number",
    "permit_no",
    "doc_no",
    "doc_type",
    "phone",
    "email",
    "address",
    "district",
    "employer",
)
ENCODINGS = {"utf-8": "utf-8-sig", "utf8": "utf-8-sig", "gb18030": "gb18030", "gbk": "gbk"}
DEFAULT_DATE_FORMATS = ["%Y-%m-%d", "%Y%m%d", "%Y/%m/%d"]
DEFAULT_TIME_FORMATS = ["%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]
SLUG = re.compile(r"^[a-z][a-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Column = Annotated[str, Field(min_length=1)]


class FieldMap(_Strict):
    """Canonical field -> column of the export."""

    full_name: Column | None = None
    family_name: Column | None = None
    given_name: Column | None = None
    local_name: Column | None = None
    sex: Column | None = None
    dob: Column | None = None
    nationality: Column | None = None
    passport: Column | None = None
    id_number: Column | None = None
    permit_no: Column | None = None
    doc_no: Column | None = None
    doc_type: Column | None = None
    phone: Column | None = None
    email: Column | None = None
    address: Column | None = None
    district: Column | None = None
    employer: Column | None = None

    def mapped(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class When(_Strict):
    """A row carries the event only when `column` holds one of `equals`."""

    column: Column
    equals: list[str]

    @field_validator("equals", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


def _check_formats(formats: list[str]) -> list[str]:
    for fmt in formats:
        if fmt != EXCEL:
            check_format(fmt)
    return formats


Formats = Annotated[list[str], AfterValidator(_check_formats)]


class EventConfig(_Strict):
    stage: str
    time: Column
    formats: Formats | None = None
    place: Column | None = None
    district: Column | None = None
    when: When | None = None

    @field_validator("stage")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError("a stage name is lower case letters, digits and underscores")
        return value


class SourceConfig(_Strict):
    """configs/sources/NAME.toml: how one agency's export maps to canonical records."""

    name: str
    format: Literal["csv", "xlsx", "parquet", "jsonl"]
    record_id: Column
    fields: FieldMap
    events: list[EventConfig] = []
    encoding: str = "utf-8"
    delimiter: str = ","
    name_order: Literal["family_first", "given_first", "auto"] = "auto"
    phone_region: str | None = None
    sheet: str | None = None
    formats: dict[str, Formats] = {}
    extra: dict[str, Column] = {}

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError("a source name is lower case letters, digits and underscores")
        return value

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        if value.lower() not in ENCODINGS:
            raise ValueError(f"unknown encoding; valid choices: {', '.join(sorted(ENCODINGS))}")
        return value.lower()

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        if len(value) != 1 or value in "\"\r\n":
            raise ValueError("the delimiter is one character other than a quote or a newline")
        return value

    @field_validator("phone_region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        import phonenumbers

        if value is not None and value.upper() not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError("not a phone region code such as CN, HK or GB")
        return None if value is None else value.upper()

    @field_validator("extra")
    @classmethod
    def _extra(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not SLUG.match(key):
                raise ValueError(f"extra field '{key}' must be lower case letters, digits, underscores")
            if key in CANONICAL_FIELDS:
                raise ValueError(f"'{key}' is a canonical field; map it in [fields], not [extra]")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SourceConfig:
        mapped = self.fields.mapped()
        if "doc_type" in mapped and "doc_no" not in mapped:
            raise ValueError("fields.doc_type needs fields.doc_no (the numbers it describes)")
        if self.format == "csv" and self.sheet is not None:
            raise ValueError("'sheet' applies to xlsx sources only")
        return self

    @property
    def python_encoding(self) -> str:
        return ENCODINGS[self.encoding]

    def date_formats(self, field: str = "dob") -> list[str]:
        """Formats for a date field: [formats] by canonical name or by its column."""
        column = self.fields.mapped().get(field)
        return self.formats.get(field) or self.formats.get(column or "") or DEFAULT_DATE_FORMATS

    def event_formats(self, event: EventConfig) -> list[str]:
        return event.formats or self.formats.get(event.time) or DEFAULT_TIME_FORMATS

    def columns(self) -> dict[str, str]:
        """Every column the config names, with the key that names it (for error messages)."""
        cols: dict[str, str] = {self.record_id: "record_id"}
        for field, column in self.fields.mapped().items():
            cols.setdefault(column, f"fields.{field}")
        for field, column in self.extra.items():
            cols.setdefault(column, f"extra.{field}")
        for i, event in enumerate(self.events):
            key = f"events[{i}]"
            cols.setdefault(event.time, f"{key}.time")
            if event.place:
                cols.setdefault(event.place, f"{key}.place")
            if event.district:
                cols.setdefault(event.district, f"{key}.district")
            if event.when:
                cols.setdefault(event.when.column, f"{key}.when.column")
        return cols


# ---- loading -------------------------------------------------------------------------------

def read_toml(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc


def _key_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _valid_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys a model accepts at the parent of `loc` (for 'unknown key' messages)."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        for candidate in getattr(annotation, "__args__", ()) + (annotation,):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                current = candidate
                break
            for inner in getattr(candidate, "__args__", ()):
                if isinstance(inner, type) and issubclass(inner, BaseModel):
                    current = inner
                    break
    return list(getattr(current, "model_fields", {}))


def describe_validation_error(path: Path, model: type[BaseModel], exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        key = _key_path(loc)
        kind = error["type"]
        if kind == "extra_forbidden":
            valid = ", ".join(_valid_keys(model, loc))
            lines.append(f"unknown key '{key}'" + (f"; valid keys: {valid}" if valid else ""))
        elif kind == "missing":
            lines.append(f"missing required key '{key}'")
        elif kind == "literal_error":
            expected = error.get("ctx", {}).get("expected", "")
            lines.append(f"key '{key}' must be one of {expected} (got {error['input']!r})")
        else:
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"key '{key}': {message}")
    return f"{path}: " + "; ".join(lines)


def load_model(path: Path, model: type[BaseModel], data: dict[str, Any] | None = None) -> Any:
    data = read_toml(path) if data is None else data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(path, model, exc)) from None


def sha256_of(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def source_config_path(config_dir: Path, name: str) -> Path:
    return Path(config_dir) / "sources" / f"{name}.toml"


def available_sources(config_dir: Path) -> list[str]:
    return sorted(p.stem for p in (Path(config_dir) / "sources").glob("*.toml"))


def load_source_config(config_dir: Path, name: str | None, config_file: Path | None = None) -> tuple[SourceConfig, Path]:
    """Load the source config by name (configs/sources/NAME.toml) or from an explicit file."""
    if config_file is not None:
        path = Path(config_file)
    else:
        path = source_config_path(config_dir, name or "")
        if not path.is_file():
            known = available_sources(config_dir)
            choices = ", ".join(known) if known else "none"
            raise ConfigError(
                f"unknown source '{name}': no {path}; configured sources: {choices}"
            )
    config = load_model(path, SourceConfig)
    if name is not None and config.name != name:
        raise ConfigError(f"{path}: key 'name' is '{config.name}' but the source asked for is '{name}'")
    return config, path


# ---- fields the source configs map (what model.toml and chain.toml may name) ---------------

NAME_PARTS = ("full_name", "family_name", "given_name", "local_name")
DOCUMENT_FIELDS = ("passport", "id_number", "permit_no", "doc_no")
# A field that model.toml can name -> the canonical fields it is made of (any one mapped will do:
# every name column comes from any name field, a doc_no holds documents of every kind). A
# canonical field not listed is made of itself; an unknown name of nothing.
MADE_OF: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("name", "name_key", "name_token", "family_name", "given_name", "local_name", "family_phonetic",
                     "given_phonetic", "name_phonetic", "phonetic_pair"), NAME_PARTS),
    "birth_year": ("dob",),
    **dict.fromkeys(("documents", "doc_number"), DOCUMENT_FIELDS),
    "passport": ("passport", "doc_no"),
    "id_number": ("id_number", "doc_no"),
    "permit_no": ("permit_no", "doc_no"),
    "address_token": ("address",),
}


@dataclass(frozen=True)
class MappedFields:
    """The canonical fields and [extra] names that the source configs of a config dir map."""

    folder: Path
    canonical: frozenset[str]
    extra: frozenset[str]

    def maps(self, field: str) -> bool:
        """Does some source map `field` (canonical, derived or extra.NAME), or what it is made of?"""
        if field.startswith("extra."):
            return field[6:] in self.extra
        made_of = MADE_OF.get(field, (field,) if field in CANONICAL_FIELDS else ())
        return any(part in self.canonical for part in made_of)

    def listing(self) -> str:
        names = [f for f in CANONICAL_FIELDS if f in self.canonical] + [f"extra.{e}" for e in sorted(self.extra)]
        return f"fields the source configs in {self.folder} map: {', '.join(names) or 'none'}"


def mapped_fields(config_dir: Path) -> MappedFields:
    """What configs/sources/*.toml map, together (each file loaded and validated)."""
    canonical: set[str] = set()
    extra: set[str] = set()
    for name in available_sources(config_dir):
        source, _ = load_source_config(config_dir, name)
        canonical.update(source.fields.mapped())
        extra.update(source.extra)
    return MappedFields(Path(config_dir) / "sources", frozenset(canonical), frozenset(extra))


def check_references(path: Path, references: list[tuple[str, str]], fields: MappedFields) -> None:
    """A ConfigError naming every (key, field) of `references` that no source maps."""
    problems = []
    for key, field in dict.fromkeys(references):
        if not fields.maps(field):
            made_of = MADE_OF.get(field)
            problems.append(f"key '{key}' names '{field}', which no source maps"
                            + (f" (it is made of {' or '.join(made_of)})" if made_of else ""))
    if problems:
        raise ConfigError(f"{path}: " + "; ".join(problems) + "; " + fields.listing())


# ---- configs/model.toml --------------------------------------------------------------------

BLOCKING_FIELDS = (
    "dob", "birth_year", "name_key", "name_token", "family_name", "given_name", "local_name",
    "family_phonetic", "given_phonetic", "name_phonetic", "phonetic_pair", "doc_number", "phone", "email", "sex",
    "nationality", "address", "address_token", "district", "employer",
)
COMPARISON_KINDS = ("name", "date", "documents", "phone", "exact", "code", "number", "text")


def _token_field(field: str) -> bool:
    """`tok.KIND`: a token of encoded records (see encode.py), `tok.extra.NAME` for an extra field."""
    kind, _, extra = (field[4:] if field.startswith("tok.") else "").partition(".")
    return bool(SLUG.match(kind) and (not extra or SLUG.match(extra)))


class BlockingRule(_Strict):
    """Records that agree on every key in `on` become candidate pairs.

    A key is a blocking field, `extra.NAME`, or either with `:N` (its first N characters).
    """

    name: str
    on: list[str] = Field(min_length=1)

    @field_validator("on")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        for key in value:
            field, _, prefix = key.partition(":")
            if prefix and not (prefix.isdigit() and int(prefix) > 0):
                raise ValueError(f"'{key}': after ':' comes a positive number of leading characters")
            if field not in BLOCKING_FIELDS and not (field.startswith("extra.") and SLUG.match(field[6:])) \
                    and not _token_field(field):
                raise ValueError(
                    f"unknown blocking field '{field}'; valid fields: {', '.join(BLOCKING_FIELDS)}, extra.NAME"
                )
        return value


class ComparisonConfig(_Strict):
    """How one field is compared; `kind` picks the level scheme."""

    kind: Literal["name", "date", "documents", "phone", "exact", "code", "number", "text"]
    field: str | None = None
    thresholds: list[Annotated[float, Field(gt=0, lt=1)]] | None = None
    term_frequency: bool | None = None


DEFAULT_BLOCKING = [
    BlockingRule(name="document", on=["doc_number"]),
    BlockingRule(name="dob_name_prefix", on=["dob", "name_key:2"]),
    BlockingRule(name="dob_phonetic", on=["dob", "name_phonetic"]),   # either name's code: order-free
    BlockingRule(name="phone", on=["phone"]),
    BlockingRule(name="email", on=["email"]),
]


class ModelConfig(_Strict):
    """configs/model.toml: blocking, comparisons, training and clustering settings."""

    threshold: float = Field(default=0.9, gt=0, lt=1)
    max_pairs: int = Field(default=300_000_000, gt=0)
    random_pairs: int = Field(default=2_000_000, ge=10_000)
    seed: int = 1
    em_max_iterations: int = Field(default=200, gt=0)
    em_tolerance: float = Field(default=1e-6, gt=0)
    compare: Literal["all"] | list[str] = "all"
    blocking: list[BlockingRule] | None = Field(default=None, min_length=1)   # None: chosen from the data
    comparisons: dict[str, ComparisonConfig | Literal[False]] = {}
    # Fields whose disagreement the clustering guard treats as a contradiction (two people).
    identity: list[str] = Field(default_factory=lambda: ["id_number", "dob"])

    @field_validator("identity")
    @classmethod
    def _identity(cls, value: list[str]) -> list[str]:
        for name in value:
            if name not in ("id_number", "dob", "passport") and not (name.startswith("extra.") and SLUG.match(name[6:])):
                raise ValueError(f"'{name}' is not an identity field; valid: id_number, dob, passport, extra.NAME")
        return value

    @field_validator("compare")
    @classmethod
    def _pairs(cls, value: Any) -> Any:
        if isinstance(value, list):
            for pair in value:
                left, sep, right = pair.partition("-")
                if not sep or not SLUG.match(left) or not SLUG.match(right):
                    raise ValueError(f"'{pair}' is not SOURCE-SOURCE (e.g. immigration-health, or health-health)")
        return value

    @model_validator(mode="after")
    def _unique_rules(self) -> ModelConfig:
        names = [rule.name for rule in self.blocking or []]
        if len(names) != len(set(names)):
            raise ValueError("blocking rule names must be unique")
        return self


# The data a comparison of these kinds reads, whatever its name or `field`.
KIND_FIELD = {"name": "name", "date": "dob", "documents": "documents", "phone": "phone"}


def model_references(config: ModelConfig) -> list[tuple[str, str]]:
    """(key, field) for every field model.toml itself names (the defaults name none)."""
    references = []
    for i, rule in enumerate(config.blocking or []):
        references += [(f"blocking[{i}].on", key.partition(":")[0]) for key in rule.on]
    for name, override in config.comparisons.items():
        key = f"comparisons.{name}"
        if override is False:
            references.append((key, name))
            continue
        if override.field is not None:
            references.append((f"{key}.field", override.field))
        if override.kind in KIND_FIELD:
            references.append((key, KIND_FIELD[override.kind]))
        elif override.field is None:
            references.append((key, name))
    if "identity" in config.model_fields_set:
        references += [(f"identity[{i}]", name) for i, name in enumerate(config.identity)]
    return references


def load_model_config(config_dir: Path, path: Path | None = None) -> tuple[ModelConfig, Path | None]:
    """configs/model.toml if present (or the given file), else the defaults. Every field it names
    must be one that configs/sources/*.toml map."""
    path = Path(path) if path else Path(config_dir) / "model.toml"
    if not path.is_file():
        if path.name != "model.toml" or path.parent != Path(config_dir):
            raise ConfigError(f"{path}: config file not found")
        return ModelConfig(), None
    config = load_model(path, ModelConfig)
    references = model_references(config)
    if references:
        check_references(path, references, mapped_fields(config_dir))
    return config, path


# ---- configs/chain.toml --------------------------------------------------------------------

FLAG_CODES = ("MISSING_STAGE", "OUT_OF_ORDER", "GAP_EXCEEDED", "EARLY_RELEASE", "DISTRICT_MISMATCH",
              "IDENTITY_CONFLICT")
SEVERITIES = ("low", "medium", "high", "critical")
DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhd])\s*$")


def parse_duration(text: str) -> float:
    """'90m', '2h', '14d' -> seconds."""
    match = DURATION.match(str(text))
    if not match:
        raise ValueError(f"'{text}' is not a duration like 90m, 2h or 14d (units m, h, d)")
    return float(match.group(1)) * {"m": 60, "h": 3600, "d": 86400}[match.group(2)]


Duration = Annotated[str, AfterValidator(lambda v: (parse_duration(v), v)[1])]


class StageConfig(_Strict):
    """One stage of the chain; gaps are measured from `after` (default: the previous stage)."""

    name: str
    after: str | None = None
    max_gap: Duration | None = None
    min_gap: Duration | None = None
    required: bool = True
    destination: str | None = None   # extra field with the person's destination district (handover rule)

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not SLUG.match(value):
            raise ValueError("a stage name is lower case letters, digits and underscores")
        return value


class ChainConfig(_Strict):
    """configs/chain.toml: the stages in order, their deadlines, severities and review threshold."""

    stages: list[StageConfig] = Field(min_length=1)
    severity: dict[Literal["MISSING_STAGE", "OUT_OF_ORDER", "GAP_EXCEEDED", "EARLY_RELEASE", "DISTRICT_MISMATCH",
                           "IDENTITY_CONFLICT"], Literal["low", "medium", "high", "critical"]] = {}
    review_below: float = Field(default=0.95, gt=0, le=1)
    join_splits: bool = True              # join a traveler the match split in two, on evidence (chain_joins.py)
    duplicate_within: Duration = "2h"     # the same stage this close in two persons: a duplicate record

    @model_validator(mode="after")
    def _graph(self) -> ChainConfig:
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError("stage names must be unique")
        for i, stage in enumerate(self.stages):
            if stage.after is not None:
                if stage.after not in names:
                    raise ValueError(f"stages[{i}].after names unknown stage '{stage.after}'; "
                                     f"stages: {', '.join(names)}")
                if names.index(stage.after) >= i:
                    raise ValueError(f"stages[{i}].after = '{stage.after}' is not an earlier stage "
                                     "(deadlines run forward; a cycle or a later stage is not allowed)")
        return self

    def after_of(self, index: int) -> str | None:
        stage = self.stages[index]
        if stage.after is not None:
            return stage.after
        return self.stages[index - 1].name if index > 0 else None

    def severity_of(self, code: str) -> str:
        defaults = {"MISSING_STAGE": "high", "OUT_OF_ORDER": "medium", "GAP_EXCEEDED": "medium",
                    "EARLY_RELEASE": "high", "DISTRICT_MISMATCH": "medium", "IDENTITY_CONFLICT": "high"}
        return self.severity.get(code, defaults[code])


def load_chain_config(config_dir: Path, path: Path | None = None) -> tuple[ChainConfig, Path]:
    """configs/chain.toml (or the given file); a stage's `destination` must be an [extra] field
    that configs/sources/*.toml map."""
    path = Path(path) if path else Path(config_dir) / "chain.toml"
    config = load_model(path, ChainConfig)
    destinations = [(i, stage.destination) for i, stage in enumerate(config.stages) if stage.destination]
    if destinations:
        fields = mapped_fields(config_dir)
        unknown = [f"key 'stages[{i}].destination' names '{name}', which no source maps as an [extra] field"
                   for i, name in destinations if name not in fields.extra]
        if unknown:
            raise ConfigError(f"{path}: " + "; ".join(unknown) + f"; extra fields the source configs in "
                              f"{fields.folder} map: {', '.join(sorted(fields.extra)) or 'none'}")
    return config, path


# ---- configs/export.toml -------------------------------------------------------------------

from pydantic import PlainSerializer, PlainValidator, ValidationInfo  # noqa: E402  (this section was appended)

from .privacy import HIDDEN, KEEP, PSEUDONYM_KINDS, ColumnMask, parse_mask  # noqa: E402

EXPORT_FLAG_COLUMNS = ("person_id", "code", "code_text", "stage", "status", "severity", "district", "confidence",
                       "review", "reason", "due", "first_seen")
EXPORT_PERSON_COLUMNS = ("name", "dob", "sex", "nationality", "phone", "passport", "id_number", "permit_no")
EXPORT_COLUMNS = EXPORT_FLAG_COLUMNS + EXPORT_PERSON_COLUMNS + ("evidence",)


MaskSetting = Annotated[ColumnMask, PlainValidator(parse_mask), PlainSerializer(str)]


class ExportProfile(_Strict):
    """One export profile: header language, the columns in order, a mask per column and,
    for a district's profile, the one district it writes.

    A person field (name, dob, ... permit_no) is written as an empty cell unless `mask` says
    otherwise: personal data leaves the workspace only where a profile explicitly asks for it.
    """

    language: Literal["zh", "en"] = "zh"
    columns: list[str] = Field(min_length=1)
    mask: dict[str, MaskSetting] = {}
    district: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        # inside a [profiles.NAME] table the generic message cannot list the valid keys; say them here
        if isinstance(data, dict):
            unknown = [key for key in data if key not in cls.model_fields]
            if unknown:
                raise ValueError(f"unknown key '{unknown[0]}'; valid keys: {', '.join(cls.model_fields)}")
        return data

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: list[str]) -> list[str]:
        for column in value:
            if column not in EXPORT_COLUMNS:
                raise ValueError(f"unknown column '{column}'; valid columns: {', '.join(EXPORT_COLUMNS)}")
        if len(set(value)) != len(value):
            raise ValueError("a column is listed twice")
        return value

    @field_validator("mask")
    @classmethod
    def _mask_keys(cls, value: dict[str, ColumnMask]) -> dict[str, ColumnMask]:
        for column, mask in value.items():
            if column not in EXPORT_COLUMNS:
                raise ValueError(f"unknown column '{column}'; valid columns: {', '.join(EXPORT_COLUMNS)}")
            if mask.mode == "pseudonym" and column not in PSEUDONYM_KINDS:
                raise ValueError(f"column '{column}': pseudonym is offered for {', '.join(PSEUDONYM_KINDS)} only")
        return value

    @field_validator("district")
    @classmethod
    def _district(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must name a district (or leave the key out for every district)")
        return None if value is None else value.strip()

    def mask_of(self, column: str) -> ColumnMask:
        return self.mask.get(column, HIDDEN if column in EXPORT_PERSON_COLUMNS else KEEP)

    @property
    def written_columns(self) -> list[str]:
        """The columns in the file: those listed, less those the profile drops."""
        return [column for column in self.columns if self.mask_of(column).mode != "drop"]

    @property
    def pseudonymized(self) -> list[str]:
        """The written columns that carry pseudonyms (a key is needed when there are any)."""
        return [column for column in self.columns if self.mask_of(column).mode == "pseudonym"]


# the most restrictive of the built-in profiles, and the default: no name, birth date, sex or
# nationality; numbers to their last 4 characters (no key needed)
RESTRICTED_COLUMNS = ["person_id", "status", "severity", "code_text", "code", "stage", "district", "reason", "due",
                      "phone", "passport", "id_number", "review", "confidence", "first_seen", "evidence"]


def _default_export_profiles() -> dict[str, ExportProfile]:
    return {
        "restricted": ExportProfile(
            language="zh",
            columns=RESTRICTED_COLUMNS,
            mask={"phone": "last4", "passport": "last4", "id_number": "last4"},
        ),
        "district_officer": ExportProfile(
            language="zh",
            columns=["person_id", "status", "severity", "code_text", "code", "stage", "reason", "due", "name", "sex",
                     "dob", "nationality", "phone", "passport", "id_number", "permit_no", "review", "confidence",
                     "first_seen", "evidence"],
            mask={"name": "keep", "sex": "keep", "dob": "keep", "nationality": "keep", "phone": "keep",
                  "passport": "last4", "id_number": "last4", "permit_no": "last4"},
        ),
        "analyst": ExportProfile(
            language="en",
            columns=["person_id", "code", "stage", "status", "severity", "district", "confidence", "review", "reason",
                     "due", "first_seen", "sex", "nationality", "phone", "passport", "id_number", "evidence"],
            mask={"sex": "keep", "nationality": "keep", "phone": "last4", "passport": "last4", "id_number": "last4"},
        ),
    }


class ExportConfig(_Strict):
    """configs/export.toml: the discrepancy export profiles and which one is the default."""

    profiles: dict[str, ExportProfile] = Field(default_factory=_default_export_profiles)
    default_profile: str = Field(default="restricted", validate_default=True)   # must name a profile
    # a current flag first seen longer ago than this without an answer is overdue (status, report)
    unanswered_after_days: int = Field(default=7, ge=1, le=3650)

    @field_validator("profiles")
    @classmethod
    def _names(cls, value: dict[str, ExportProfile]) -> dict[str, ExportProfile]:
        if not value:
            raise ValueError("define at least one profile ([profiles.NAME])")
        for name in value:
            if not SLUG.match(name):
                raise ValueError(f"profile name '{name}' must be lower case letters, digits and underscores")
        return value

    @field_validator("default_profile")
    @classmethod
    def _default_exists(cls, value: str, info: ValidationInfo) -> str:
        profiles = info.data.get("profiles")
        if profiles is not None and value not in profiles:
            raise ValueError(f"'{value}' is not a profile; profiles: {', '.join(sorted(profiles))}")
        return value

    def profile(self, name: str | None) -> tuple[str, ExportProfile]:
        """The named profile (the default when None); an unknown name is a ConfigError listing the profiles."""
        name = name or self.default_profile
        if name not in self.profiles:
            raise ConfigError(f"unknown export profile '{name}'; profiles: {', '.join(sorted(self.profiles))}")
        return name, self.profiles[name]


def _load_optional(config_dir: Path, path: Path | None, name: str, model: type[BaseModel]) -> tuple[Any, Path | None]:
    """CONFIG_DIR/NAME if present (or the given file, which must exist), else the model's defaults."""
    path = Path(path) if path else Path(config_dir) / name
    if not path.is_file():
        if path.name != name or path.parent != Path(config_dir):
            raise ConfigError(f"{path}: config file not found")
        return model(), None
    return load_model(path, model), path


def load_export_config(config_dir: Path, path: Path | None = None) -> tuple[ExportConfig, Path | None]:
    """configs/export.toml if present (or the given file), else the built-in profiles."""
    return _load_optional(config_dir, path, "export.toml", ExportConfig)


# ---- configs/pipeline.toml -----------------------------------------------------------------

class PipelineConfig(_Strict):
    """configs/pipeline.toml: where `linkage run` finds and puts files, and how it matches.

    `workspace` and `config_dir` are relative to this file; the folders and the log are relative
    to the workspace (absolute paths are taken as they are).
    """

    workspace: str | None = None
    config_dir: str | None = None
    inbox: str = "inbox"
    archive: str = "archive"
    rejected: str = "rejected"
    exports: str = "exports"
    log: str = "logs/linkage.log"
    export_profile: str | None = None        # default: export.toml's default_profile
    retrain_every: Duration = "7d"           # the stored model is reused until it is this old ...
    retrain_growth: float = Field(default=0.5, ge=0)   # ... or the records grew by this share since

    @field_validator("inbox", "archive", "rejected", "exports", "log")
    @classmethod
    def _not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must name a path")
        return value


def load_pipeline_config(config_dir: Path, path: Path | None = None) -> tuple[PipelineConfig, Path | None]:
    """configs/pipeline.toml if present (or the given file), else the defaults."""
    return _load_optional(config_dir, path, "pipeline.toml", PipelineConfig)
