"""The search language for runs and experiments: tokenizer, parser and a small AST.

The grammar is MLflow's (``mlflow/utils/search_utils.py``) so MLflow clients keep working,
plus what users have asked MLflow for since 2018 (#4135, #6479): ``OR``, parentheses,
``IN``/``NOT IN`` on every string field and ``IS NULL``/``IS NOT NULL``. ``AND`` binds
tighter than ``OR``::

    filter      := or_expr
    or_expr     := and_expr (OR and_expr)*
    and_expr    := primary (AND primary)*
    primary     := "(" or_expr ")" | comparison
    comparison  := identifier ( OP value | (LIKE | ILIKE) string | [NOT] IN list
                              | IS [NOT] NULL )
    identifier  := segment ("." segment)*      segment: word, `quoted` or "quoted"
    list        := "(" value ("," value)* ")"

The first segment of a dotted identifier names the entity (``metrics.``, ``params.``,
``tags.``, ``attributes.``, ``datasets.`` and their aliases); an identifier without a
known prefix is a run (or experiment) attribute. Keywords are case-insensitive.

This module is pure Python on purpose: it validates everything a user can get wrong and
raises :class:`~conveyor.errors.InvalidInput` naming the token and its position (counted
in characters from 0), so the SQL compiler (:mod:`conveyor.store.sql.search`) and any
future back end receive only well-typed trees and never see user text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from conveyor.errors import InvalidInput

__all__ = [
    "And",
    "Comparison",
    "Entity",
    "Node",
    "Op",
    "Or",
    "OrderKey",
    "parse_experiment_filter",
    "parse_experiment_order_by",
    "parse_model_version_filter",
    "parse_model_version_order_by",
    "parse_registered_model_filter",
    "parse_registered_model_order_by",
    "parse_run_filter",
    "parse_run_order_by",
]

#: Deepest parenthesis nesting accepted; deeper input is refused instead of overflowing.
MAX_DEPTH = 32
#: Most comparisons in one filter; each becomes a subquery, so the SQL stays bounded.
MAX_COMPARISONS = 200
#: Most values in one ``IN`` list (SQLite allows 32,766 bound parameters per statement).
MAX_IN_VALUES = 1000


class Entity(StrEnum):
    METRIC = "metric"
    PARAM = "param"
    TAG = "tag"
    ATTRIBUTE = "attribute"
    DATASET = "dataset"


class Op(StrEnum):
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    LIKE = "LIKE"
    ILIKE = "ILIKE"
    IN = "IN"
    NOT_IN = "NOT IN"
    IS_NULL = "IS NULL"
    IS_NOT_NULL = "IS NOT NULL"


Value = str | int | float | tuple[str, ...] | tuple[int, ...] | None


@dataclass(frozen=True, slots=True)
class Comparison:
    """``entity.key op value``; ``value`` is a tuple for IN/NOT IN and None for IS [NOT] NULL.

    Attribute keys are canonical (``created`` arrives as ``start_time``); metric and time
    values are numbers, ``experiment_id`` values ints, everything else strings.
    """

    entity: Entity
    key: str
    op: Op
    value: Value


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


Node = Comparison | And | Or


@dataclass(frozen=True, slots=True)
class OrderKey:
    entity: Entity
    key: str
    ascending: bool = True


# -- what each search accepts ---------------------------------------------------------------


class _Kind(StrEnum):
    STRING = "string"
    NUMBER = "number"
    ID = "id"


_OPS: dict[_Kind, tuple[Op, ...]] = {
    _Kind.STRING: (Op.EQ, Op.NE, Op.LIKE, Op.ILIKE, Op.IN, Op.NOT_IN, Op.IS_NULL, Op.IS_NOT_NULL),
    _Kind.NUMBER: (Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE, Op.IS_NULL, Op.IS_NOT_NULL),
    _Kind.ID: (Op.EQ, Op.NE, Op.IN, Op.NOT_IN),
}

#: Identifier prefixes, exactly MLflow's aliases.
_PREFIXES: dict[str, Entity] = {
    **dict.fromkeys(("metric", "metrics"), Entity.METRIC),
    **dict.fromkeys(("param", "params", "parameter", "parameters"), Entity.PARAM),
    **dict.fromkeys(("tag", "tags"), Entity.TAG),
    **dict.fromkeys(("attribute", "attributes", "attr", "run"), Entity.ATTRIBUTE),
    **dict.fromkeys(("dataset", "datasets"), Entity.DATASET),
}


@dataclass(frozen=True, slots=True)
class _Grammar:
    """What one kind of search (runs, experiments) accepts."""

    what: str
    #: Entities allowed in filters, with their value kind (attributes: see ``attributes``).
    entities: Mapping[Entity, _Kind]
    attributes: Mapping[str, _Kind]
    aliases: Mapping[str, str]
    dataset_keys: tuple[str, ...]
    order_entities: tuple[Entity, ...]
    order_attributes: tuple[str, ...]


_RUN_ATTRIBUTES: dict[str, _Kind] = {
    "run_id": _Kind.STRING,
    "run_name": _Kind.STRING,
    "status": _Kind.STRING,
    "user_id": _Kind.STRING,
    "artifact_uri": _Kind.STRING,
    "lifecycle_stage": _Kind.STRING,
    "start_time": _Kind.NUMBER,
    "end_time": _Kind.NUMBER,
    "experiment_id": _Kind.ID,
}

_RUNS = _Grammar(
    what="run",
    entities={
        Entity.METRIC: _Kind.NUMBER,
        **dict.fromkeys((Entity.PARAM, Entity.TAG, Entity.ATTRIBUTE, Entity.DATASET), _Kind.STRING),
    },
    attributes=_RUN_ATTRIBUTES,
    aliases={
        "run name": "run_name",
        "Run name": "run_name",
        "Run Name": "run_name",
        "created": "start_time",
        "Created": "start_time",
    },
    dataset_keys=("name", "digest", "context"),
    order_entities=(Entity.METRIC, Entity.PARAM, Entity.TAG, Entity.ATTRIBUTE),
    order_attributes=tuple(_RUN_ATTRIBUTES),
)

_EXPERIMENTS = _Grammar(
    what="experiment",
    entities={Entity.TAG: _Kind.STRING, Entity.ATTRIBUTE: _Kind.STRING},
    attributes={
        "name": _Kind.STRING,
        "creation_time": _Kind.NUMBER,
        "last_update_time": _Kind.NUMBER,
        "experiment_id": _Kind.ID,
        "lifecycle_stage": _Kind.STRING,
    },
    aliases={},
    dataset_keys=(),
    order_entities=(Entity.ATTRIBUTE,),
    order_attributes=("name", "experiment_id", "creation_time", "last_update_time"),
)


# -- tokens ---------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
      (?P<ws>\s+)
    | (?P<lparen>\()
    | (?P<rparen>\))
    | (?P<comma>,)
    | (?P<op><=|>=|!=|=|<|>)
    | (?P<string>'(?:[^']|'')*')
    | (?P<dquoted>"(?:[^"]|"")*")
    | (?P<backticked>`(?:[^`]|``)*`)
    | (?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<word>[^\W\d][\w\-/]*(?:\.[\w\-/]+)*)
    | (?P<dot>\.)
    """,
    re.VERBOSE,
)

_KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "LIKE", "ILIKE", "IS", "NULL", "ASC", "DESC"})


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str
    pos: int

    @property
    def end(self) -> int:
        return self.pos + len(self.text)

    def keyword(self) -> str | None:
        """The upper-cased keyword this word spells, or None (keywords ignore case)."""
        upper = self.text.upper()
        return upper if self.kind == "word" and upper in _KEYWORDS else None

    def unquoted(self) -> str:
        """Text inside the quotes; a doubled quote character stands for itself."""
        quote = self.text[0]
        return self.text[1:-1].replace(quote * 2, quote)

    def describe(self) -> str:
        return "the end of the input" if self.kind == "end" else repr(self.text)


#: Longest filter echoed back in an error message; positions still count in the full text.
_ECHO_LIMIT = 200


def _invalid(context: str, text: str, message: str, pos: int, hint: str = "") -> InvalidInput:
    """``Invalid filter '<text>': <what> at position <n>; <how to fix>``."""
    shown = text if len(text) <= _ECHO_LIMIT else text[:_ECHO_LIMIT] + "..."
    full = f"Invalid {context} {shown!r}: {message} at position {pos}"
    return InvalidInput(f"{full}; {hint}" if hint else full)


def _tokenize(text: str, context: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            char = text[pos]
            if char in "'\"`":
                hint = f"close it with {char} (double it to include it in the text)"
                raise _invalid(context, text, f"unterminated {char}-quoted text", pos, hint)
            raise _invalid(context, text, f"unexpected character {char!r}", pos)
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Token(kind, match.group(), pos))
        pos = match.end()
    tokens.append(_Token("end", "", len(text)))
    return tokens


# -- parser ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Identifier:
    entity: Entity
    key: str
    text: str
    pos: int


class _Parser:
    """Recursive descent over the token list; every method consumes what it recognises."""

    def __init__(self, text: str, grammar: _Grammar, context: str) -> None:
        self.text = text
        self.grammar = grammar
        self.context = context
        self.tokens = _tokenize(text, context)
        self.index = 0
        self.comparisons = 0

    # token helpers

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def at_keyword(self, *words: str) -> bool:
        return self.current.keyword() in words

    def fail(self, message: str, token: _Token | None = None, hint: str = "") -> InvalidInput:
        """The error for ``token`` (the current one by default): what, where, then how to fix."""
        return self.error(message, (token or self.current).pos, hint)

    def error(self, message: str, pos: int, hint: str = "") -> InvalidInput:
        return _invalid(self.context, self.text, message, pos, hint)

    def expect_end(self) -> None:
        if self.current.kind != "end":
            raise self.fail(f"unexpected {self.current.describe()}")

    # filters

    def parse_filter(self) -> Node:
        node = self.or_expr(0)
        if self.current.kind == "rparen":
            raise self.fail("unbalanced ')'")
        self.expect_end()
        return node

    def or_expr(self, depth: int) -> Node:
        items = [self.and_expr(depth)]
        while self.at_keyword("OR"):
            self.advance()
            items.append(self.and_expr(depth))
        return _combine(Or, items)

    def and_expr(self, depth: int) -> Node:
        items = [self.primary(depth)]
        while self.at_keyword("AND"):
            self.advance()
            items.append(self.primary(depth))
        return _combine(And, items)

    def primary(self, depth: int) -> Node:
        if self.current.kind == "lparen":
            opening = self.advance()
            if depth + 1 > MAX_DEPTH:
                raise self.fail(f"parentheses nested deeper than {MAX_DEPTH} levels", opening)
            node = self.or_expr(depth + 1)
            if self.current.kind != "rparen":
                raise self.fail(
                    f"expected ')' to close the '(' at position {opening.pos}, got {self.current.describe()}"
                )
            self.advance()
            return node
        if self.at_keyword("NOT"):
            raise self.fail(
                "unsupported NOT", hint="NOT only appears in 'NOT IN'; write 'key != value' instead"
            )
        return self.comparison()

    def comparison(self) -> Comparison:
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise self.fail(f"more than {MAX_COMPARISONS} comparisons")
        ident = self.identifier(for_order=False)
        kind = self.kind_of(ident)
        op_token = self.current
        op = self.comparator(ident)
        if op not in _OPS[kind]:
            allowed = ", ".join(_OPS[kind])
            raise self.fail(
                f"comparator {op.value} is not supported for {ident.text!r}",
                op_token,
                f"use one of {allowed}",
            )
        value: Value
        if op in (Op.IS_NULL, Op.IS_NOT_NULL):
            value = None
        elif op in (Op.IN, Op.NOT_IN):
            value = self.value_list(ident, kind)
        else:
            value = self.value(ident, kind)
        return Comparison(ident.entity, ident.key, op, value)

    def comparator(self, ident: _Identifier) -> Op:
        token = self.advance()
        if token.kind == "op":
            return Op(token.text)
        word = token.keyword()
        if word in ("LIKE", "ILIKE", "IN"):
            return Op(word)
        if word == "NOT":
            if self.at_keyword("IN"):
                self.advance()
                return Op.NOT_IN
            raise self.fail(
                f"expected IN after NOT, got {self.current.describe()}", hint="NOT only appears in 'NOT IN'"
            )
        if word == "IS":
            negated = self.at_keyword("NOT")
            if negated:
                self.advance()
            if not self.at_keyword("NULL"):
                raise self.fail(
                    f"expected NULL after {'IS NOT' if negated else 'IS'}, got {self.current.describe()}"
                )
            self.advance()
            return Op.IS_NOT_NULL if negated else Op.IS_NULL
        raise self.fail(
            f"expected a comparator (=, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN, IS NULL, "
            f"IS NOT NULL) after {ident.text!r}, got {token.describe()}",
            token,
        )

    def value(self, ident: _Identifier, kind: _Kind) -> str | int | float:
        token = self.advance()
        if kind is _Kind.NUMBER:
            if token.kind != "number":
                raise self.fail(f"expected a number for {ident.text!r}, got {token.describe()}", token)
            return _number(token.text)
        if kind is _Kind.ID:
            return self.id_value(ident, token)
        if token.kind in ("string", "dquoted"):
            return token.unquoted()
        raise self.fail(
            f"expected a quoted string for {ident.text!r}, got {token.describe()}",
            token,
            "put string values in single or double quotes",
        )

    def id_value(self, ident: _Identifier, token: _Token) -> int:
        raw = token.unquoted() if token.kind in ("string", "dquoted") else token.text
        if token.kind not in ("string", "dquoted", "number") or not raw.isascii() or not raw.isdigit():
            raise self.fail(
                f"expected an experiment id (digits) for {ident.text!r}, got {token.describe()}", token
            )
        return int(raw)

    def value_list(self, ident: _Identifier, kind: _Kind) -> tuple[str, ...] | tuple[int, ...]:
        if self.current.kind != "lparen":
            raise self.fail(
                f"expected '(' to start the value list for {ident.text!r}, got {self.current.describe()}"
            )
        self.advance()
        values = [self.value(ident, kind)]
        while self.current.kind == "comma":
            self.advance()
            values.append(self.value(ident, kind))
        if self.current.kind != "rparen":
            raise self.fail(
                f"expected ',' or ')' in the value list for {ident.text!r}, got {self.current.describe()}"
            )
        closing = self.advance()
        if len(values) > MAX_IN_VALUES:
            raise self.fail(f"more than {MAX_IN_VALUES} values in the list for {ident.text!r}", closing)
        return tuple(values)  # type: ignore[return-value]

    # identifiers

    def identifier(self, *, for_order: bool) -> _Identifier:
        first = self.current
        parts: list[str] = []
        quoted: list[bool] = []
        previous: _Token | None = None
        while True:
            token = self.current
            if previous is not None and token.pos != previous.end:
                raise self.fail(f"expected a key name right after '.', got {token.describe()}", token)
            if token.kind == "word" and token.keyword() is None:
                parts.extend(token.text.split("."))
                quoted.extend([False] * (token.text.count(".") + 1))
            elif token.kind in ("dquoted", "backticked"):
                parts.append(token.unquoted())
                quoted.append(True)
            elif previous is None:
                place = "an order_by key" if for_order else "a key to compare"
                raise self.fail(f"expected {place}, got {token.describe()}", token)
            else:
                raise self.fail(f"expected a key name after '.', got {token.describe()}", token)
            self.advance()
            dot = self.current
            if dot.kind != "dot" or dot.pos != token.end:
                break
            previous = self.advance()
        text = self.text[first.pos : self.tokens[self.index - 1].end]
        return self.resolve(parts, quoted, text, first.pos, for_order=for_order)

    def resolve(
        self, parts: list[str], quoted: list[bool], text: str, pos: int, *, for_order: bool
    ) -> _Identifier:
        grammar = self.grammar
        entity = Entity.ATTRIBUTE
        key_parts = parts
        if len(parts) > 1:
            prefix = parts[0].lower()
            if quoted[0] or prefix not in _PREFIXES:
                names = "metric(s), param(s)/parameter(s), tag(s), attribute(s)/attr/run, dataset(s)"
                raise self.error(
                    f"unknown entity {parts[0]!r} in {text!r}",
                    pos,
                    f"prefixes are {names}; quote keys that contain dots",
                )
            entity = _PREFIXES[prefix]
            key_parts = parts[1:]
        key = ".".join(key_parts)
        allowed = grammar.order_entities if for_order else tuple(grammar.entities)
        if entity not in allowed:
            use = "order by" if for_order else "filter on"
            raise self.error(f"cannot {use} {entity.value}s in {grammar.what} searches ({text!r})", pos)
        if not key:
            raise self.error(f"empty key in {text!r}", pos)
        if entity is Entity.ATTRIBUTE:
            key = grammar.aliases.get(key, key)
            names = grammar.order_attributes if for_order else tuple(grammar.attributes)
            if key not in names:
                raise self.error(
                    f"unknown {grammar.what} attribute {text!r}",
                    pos,
                    f"valid attributes are {', '.join(names)}",
                )
        elif entity is Entity.DATASET and key not in grammar.dataset_keys:
            raise self.error(
                f"unknown dataset field {text!r}", pos, f"valid fields are {', '.join(grammar.dataset_keys)}"
            )
        return _Identifier(entity, key, text, pos)

    def kind_of(self, ident: _Identifier) -> _Kind:
        if ident.entity is Entity.ATTRIBUTE:
            return self.grammar.attributes[ident.key]
        return self.grammar.entities[ident.entity]

    # order_by

    def parse_order_key(self) -> OrderKey:
        ident = self.identifier(for_order=True)
        ascending = True
        word = self.current.keyword()
        if word in ("ASC", "DESC"):
            ascending = word == "ASC"
            self.advance()
        elif self.current.kind != "end":
            raise self.fail(f"expected ASC or DESC after {ident.text!r}, got {self.current.describe()}")
        self.expect_end()
        return OrderKey(ident.entity, ident.key, ascending)


def _combine(cls: type[And] | type[Or], items: list[Node]) -> Node:
    """One item stays itself; nested nodes of the same kind are flattened."""
    if len(items) == 1:
        return items[0]
    flat: list[Node] = []
    for item in items:
        flat.extend(item.items if isinstance(item, cls) else (item,))
    return cls(tuple(flat))


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        return float(text)


_LOGGED_MODELS = _Grammar(
    what="logged model",
    entities={
        Entity.ATTRIBUTE: _Kind.STRING,
        Entity.TAG: _Kind.STRING,
        Entity.PARAM: _Kind.STRING,
        Entity.METRIC: _Kind.NUMBER,
    },
    attributes={
        "model_id": _Kind.STRING,
        "name": _Kind.STRING,
        "model_type": _Kind.STRING,
        "status": _Kind.STRING,
        "source_run_id": _Kind.STRING,
        "creation_timestamp": _Kind.NUMBER,
        "last_updated_timestamp": _Kind.NUMBER,
        "experiment_id": _Kind.ID,
    },
    aliases={
        "creation_time": "creation_timestamp",
        "last_updated_time": "last_updated_timestamp",
        "run_id": "source_run_id",
    },
    dataset_keys=(),
    order_entities=(Entity.ATTRIBUTE,),
    order_attributes=(
        "name",
        "model_id",
        "model_type",
        "status",
        "source_run_id",
        "creation_timestamp",
        "last_updated_timestamp",
    ),
)

_REGISTERED_MODELS = _Grammar(
    what="registered model",
    entities={Entity.ATTRIBUTE: _Kind.STRING, Entity.TAG: _Kind.STRING},
    attributes={
        "name": _Kind.STRING,
        "creation_timestamp": _Kind.NUMBER,
        "last_updated_timestamp": _Kind.NUMBER,
    },
    aliases={"timestamp": "creation_timestamp"},
    dataset_keys=(),
    order_entities=(Entity.ATTRIBUTE,),
    order_attributes=("name", "creation_timestamp", "last_updated_timestamp"),
)

_MODEL_VERSIONS = _Grammar(
    what="model version",
    entities={Entity.ATTRIBUTE: _Kind.STRING, Entity.TAG: _Kind.STRING},
    attributes={
        "name": _Kind.STRING,
        "version_number": _Kind.NUMBER,
        "run_id": _Kind.STRING,
        "source_path": _Kind.STRING,
        "current_stage": _Kind.STRING,
        "status": _Kind.STRING,
        "model_digest": _Kind.STRING,
        "creation_timestamp": _Kind.NUMBER,
        "last_updated_timestamp": _Kind.NUMBER,
    },
    aliases={"version": "version_number", "source": "source_path", "timestamp": "creation_timestamp"},
    dataset_keys=(),
    order_entities=(Entity.ATTRIBUTE,),
    order_attributes=("name", "version_number", "creation_timestamp", "last_updated_timestamp"),
)

# -- public API -----------------------------------------------------------------------------


def _parse_filter(text: str | None, grammar: _Grammar) -> Node | None:
    if text is None:
        return None
    if not isinstance(text, str):
        raise InvalidInput(f"Invalid filter: expected a string, got {type(text).__name__}")
    if not text.strip():
        return None
    return _Parser(text, grammar, "filter").parse_filter()


def _parse_order_by(items: Sequence[str] | None, grammar: _Grammar) -> list[OrderKey]:
    keys: list[OrderKey] = []
    for item in items or ():
        if not isinstance(item, str) or not item.strip():
            raise InvalidInput(f"Invalid order_by clause {item!r}: expected '<key> [ASC|DESC]'")
        keys.append(_Parser(item, grammar, "order_by clause").parse_order_key())
    return keys


def parse_run_filter(text: str | None) -> Node | None:
    """Parse a run filter; None or blank means "no filter" and returns None.

    Raises ``InvalidInput`` naming the offending token and its position.
    """
    return _parse_filter(text, _RUNS)


def parse_experiment_filter(text: str | None) -> Node | None:
    """Parse an experiment filter: attributes ``name``, ``creation_time``,
    ``last_update_time``, ``experiment_id``, ``lifecycle_stage`` and ``tags.<key>``."""
    return _parse_filter(text, _EXPERIMENTS)


def parse_logged_model_filter(text: str | None) -> Node | None:
    """Parse a logged-model filter (MLflow 3): ``name``, ``model_type``, ``status``,
    ``source_run_id``, times, ``params.<key>``, ``tags.<key>`` and ``metrics.<key>``."""
    return _parse_filter(text, _LOGGED_MODELS)


def parse_run_order_by(items: Sequence[str] | None) -> list[OrderKey]:
    """Parse run ``order_by`` items (``<key> [ASC|DESC]``, ASC by default): metrics,
    params, tags and run attributes (``created`` meaning ``start_time``)."""
    return _parse_order_by(items, _RUNS)


def parse_experiment_order_by(items: Sequence[str] | None) -> list[OrderKey]:
    """Parse experiment ``order_by`` items: ``name``, ``experiment_id``,
    ``creation_time`` or ``last_update_time``, each optionally ASC or DESC."""
    return _parse_order_by(items, _EXPERIMENTS)


def parse_registered_model_filter(text: str | None) -> Node | None:
    """Parse a registered-model filter: ``name``, the two timestamps and ``tags.<key>``."""
    return _parse_filter(text, _REGISTERED_MODELS)


def parse_registered_model_order_by(items: Sequence[str] | None) -> list[OrderKey]:
    """Parse registered-model ``order_by`` items: ``name``, ``creation_timestamp``
    (alias ``timestamp``) or ``last_updated_timestamp``, each optionally ASC or DESC."""
    return _parse_order_by(items, _REGISTERED_MODELS)


def parse_model_version_filter(text: str | None) -> Node | None:
    """Parse a model-version filter: ``name``, ``version_number``, ``run_id``,
    ``source_path``, ``current_stage``, ``status``, ``model_digest``, times, ``tags.<key>``."""
    return _parse_filter(text, _MODEL_VERSIONS)


def parse_model_version_order_by(items: Sequence[str] | None) -> list[OrderKey]:
    """Parse model-version ``order_by`` items: ``name``, ``version_number`` and the times."""
    return _parse_order_by(items, _MODEL_VERSIONS)
