"""Kubernetes label selectors, shared by the argo and kubectl stand-ins.

A port of k8s.io/apimachinery v0.33 `pkg/labels/selector.go` (the version argo v3.7.18 builds with):
the same lexer and parser, the same error texts, the same matching rules and the same normalised
`String()`. `argo list -l` parses on the client, so a bad selector must fail exactly as the CLI does.
"""

import json
import re
from dataclasses import dataclass
from enum import IntEnum


class SelectorError(ValueError):
    """The text the real parser returns; the CLI prints it after `Error: `."""


class _Tok(IntEnum):
    ERROR = 0
    END = 1
    CLOSE = 2
    COMMA = 3
    NOT = 4
    DOUBLE_EQUALS = 5
    EQUALS = 6
    GT = 7
    IDENT = 8
    IN = 9
    LT = 10
    NOT_EQUALS = 11
    NOT_IN = 12
    OPEN = 13


_LITERALS = {
    ")": _Tok.CLOSE,
    ",": _Tok.COMMA,
    "!": _Tok.NOT,
    "==": _Tok.DOUBLE_EQUALS,
    "=": _Tok.EQUALS,
    ">": _Tok.GT,
    "in": _Tok.IN,
    "<": _Tok.LT,
    "!=": _Tok.NOT_EQUALS,
    "notin": _Tok.NOT_IN,
    "(": _Tok.OPEN,
}
_OPERATORS = {
    _Tok.IN: "in",
    _Tok.EQUALS: "=",
    _Tok.DOUBLE_EQUALS: "==",
    _Tok.GT: "gt",
    _Tok.LT: "lt",
    _Tok.NOT_IN: "notin",
    _Tok.NOT_EQUALS: "!=",
}
# selection.Operator strings, in the order binaryOperators lists them in error messages.
_BINARY = ("in", "notin", "=", "==", "!=", "gt", "lt")
_SPECIAL = set("=!(),><")
_SPACE = set(" \t\r\n")

_NAME_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_NAME = re.compile(_NAME_FMT)
_VALUE_FMT = f"({_NAME_FMT})?"
_DNS_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS_SUBDOMAIN_FMT = rf"{_DNS_LABEL}(\.{_DNS_LABEL})*"
_DNS_SUBDOMAIN = re.compile(_DNS_SUBDOMAIN_FMT)
_NAME_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
)
_VALUE_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', "
    "and must start and end with an alphanumeric character"
)


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    # validation.RegexError, double space after each comma included.
    shown = " or ".join(f"'{example}', " for example in examples)
    return f"{msg} (e.g. {shown}regex used for validation is '{fmt}')"


def go_quote(text: str) -> str:
    """Go's %q for the printable text label selectors can hold."""
    return json.dumps(text, ensure_ascii=False)


def qualified_name_errors(value: str) -> list[str]:
    """validation.IsQualifiedName: the rule for label keys."""
    errors: list[str] = []
    parts = value.split("/")
    if len(parts) > 2:
        return [
            "a qualified name "
            + _regex_error(_NAME_MSG, _NAME_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            if len(prefix) > 253:
                errors.append("prefix part must be no more than 253 characters")
            if not _DNS_SUBDOMAIN.fullmatch(prefix):
                errors.append("prefix part " + _regex_error(_SUBDOMAIN_MSG, _DNS_SUBDOMAIN_FMT, "example.com"))
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part must be no more than 63 characters")
    if not _NAME.fullmatch(name):
        errors.append("name part " + _regex_error(_NAME_MSG, _NAME_FMT, "MyName", "my.name", "123-abc"))
    return errors


def label_value_errors(value: str) -> list[str]:
    """validation.IsValidLabelValue."""
    errors: list[str] = []
    if len(value) > 63:
        errors.append("must be no more than 63 characters")
    if value and not _NAME.fullmatch(value):
        errors.append(_regex_error(_VALUE_MSG, _VALUE_FMT, "MyValue", "my_value", "12345"))
    return errors


def invalid(field: str, value: str, details: list[str]) -> str:
    """field.Invalid(...).Error()."""
    return f"{field}: Invalid value: {go_quote(value)}: {'; '.join(details)}"


def aggregate(messages: list[str]) -> str:
    """utilerrors.Aggregate.Error(): duplicates dropped, several shown as a bracketed list."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def _parse_int64(text: str) -> int | None:
    # strconv.ParseInt(s, 10, 64): optional sign, decimal digits only, int64 range.
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        return None
    number = int(text)
    return number if -(2**63) <= number < 2**63 else None


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: str  # a selection.Operator string: in notin = == != gt lt exists !
    values: tuple[str, ...] = ()

    def matches(self, labels: dict[str, str]) -> bool:
        present = self.key in labels
        if self.operator in ("in", "=", "=="):
            return present and labels[self.key] in self.values
        if self.operator in ("notin", "!="):
            return not present or labels[self.key] not in self.values
        if self.operator == "exists":
            return present
        if self.operator == "!":
            return not present
        if self.operator in ("gt", "lt") and present and len(self.values) == 1:
            have, want = _parse_int64(labels[self.key]), _parse_int64(self.values[0])
            if have is None or want is None:
                return False
            return have > want if self.operator == "gt" else have < want
        return False

    def __str__(self) -> str:
        if self.operator == "exists":
            return self.key
        if self.operator == "!":
            return "!" + self.key
        shown = ",".join(sorted(self.values)) if len(self.values) > 1 else "".join(self.values)
        if self.operator in ("in", "notin"):
            return f"{self.key} {self.operator} ({shown})"
        symbol = {"gt": ">", "lt": "<"}.get(self.operator, self.operator)
        return f"{self.key}{symbol}{shown}"


def requirement(key: str, operator: str, values: list[str]) -> tuple[Requirement, str | None]:
    """labels.NewRequirement: the requirement, and the aggregated error text (None if valid).

    Like the Go code it always returns the requirement; `argo list --status` relies on that."""
    errors: list[str] = []
    if key_errors := qualified_name_errors(key):
        errors.append(invalid("key", key, key_errors))
    if operator in ("in", "notin") and not values:
        errors.append("values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty")
    if operator in ("=", "==", "!=") and len(values) != 1:
        errors.append(
            f"values: Invalid value: {_go_slice(values)}: exact-match compatibility requires one single value"
        )
    if operator in ("exists", "!") and values:
        errors.append(
            f"values: Invalid value: {_go_slice(values)}: values set must be empty for exists and does not exist"
        )
    if operator in ("gt", "lt"):
        if len(values) != 1:
            detail = "for 'Gt', 'Lt' operators, exactly one value is required"
            errors.append(f"values: Invalid value: {_go_slice(values)}: {detail}")
        for i, value in enumerate(values):
            if _parse_int64(value) is None:
                errors.append(
                    invalid(f"values[{i}]", value, ["for 'Gt', 'Lt' operators, the value must be an integer"])
                )
    for i, value in enumerate(values):
        if value_errors := label_value_errors(value):
            errors.append(invalid(f"values[{i}][{key}]", value, value_errors))
    return Requirement(key, operator, tuple(values)), aggregate(errors) if errors else None


def _go_slice(values: list[str]) -> str:
    # %#v of a []string, which is how field errors print a slice.
    return "[]string{" + ", ".join(go_quote(v) for v in values) + "}"


class Selector:
    """An AND of requirements, kept sorted by key like internalSelector."""

    def __init__(self, requirements: list[Requirement] | None = None) -> None:
        self.requirements = sorted(requirements or [], key=lambda r: r.key)

    def add(self, *more: Requirement) -> "Selector":
        return Selector([*self.requirements, *more])

    def matches(self, labels: dict[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.items: list[tuple[_Tok, str]] = []
        self.at = 0

    # --- lexer ----------------------------------------------------------------------------------

    def _read(self) -> str:
        if self.pos < len(self.text):
            self.pos += 1
            return self.text[self.pos - 1]
        return ""

    def _lex(self) -> tuple[_Tok, str]:
        ch = self._read()
        while ch in _SPACE and ch:
            ch = self._read()
        if not ch:
            return _Tok.END, ""
        self.pos -= 1
        if ch in _SPECIAL:
            return self._special()
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in _SPECIAL and self.text[self.pos] not in _SPACE:
            self.pos += 1
        word = self.text[start : self.pos]
        return _LITERALS.get(word, _Tok.IDENT), word

    def _special(self) -> tuple[_Tok, str]:
        found: tuple[_Tok, str] | None = None
        buffer = ""
        while (ch := self._read()) != "":
            if ch not in _SPECIAL:
                self.pos -= 1
                break
            buffer += ch
            if buffer in _LITERALS:
                found = (_LITERALS[buffer], buffer)
            elif found is not None:
                self.pos -= 1
                break
        return found or (_Tok.ERROR, f"error expected: keyword found '{buffer}'")

    # --- parser ---------------------------------------------------------------------------------

    def _peek(self, values: bool = True) -> tuple[_Tok, str]:
        tok, lit = self.items[self.at]
        return (_Tok.IDENT, lit) if values and tok in (_Tok.IN, _Tok.NOT_IN) else (tok, lit)

    def _take(self, values: bool = True) -> tuple[_Tok, str]:
        found = self._peek(values)
        self.at += 1
        return found

    def parse(self) -> list[Requirement]:
        while True:
            self.items.append(self._lex())
            if self.items[-1][0] == _Tok.END:
                break
        found: list[Requirement] = []
        while True:
            tok, lit = self._peek()
            if tok == _Tok.END:
                return found
            if tok not in (_Tok.IDENT, _Tok.NOT):
                raise SelectorError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                found.append(self._requirement())
            except SelectorError as error:
                raise SelectorError(f"unable to parse requirement: {error}") from None
            tok, lit = self._take()
            if tok == _Tok.END:
                return found
            if tok != _Tok.COMMA:
                raise SelectorError(f"found '{lit}', expected: ',' or 'end of string'")
            tok, lit = self._peek()
            if tok not in (_Tok.IDENT, _Tok.NOT):
                raise SelectorError(f"found '{lit}', expected: identifier after ','")

    def _requirement(self) -> Requirement:
        operator = ""
        tok, key = self._take()
        if tok == _Tok.NOT:
            operator = "!"
            tok, key = self._take()
        if tok != _Tok.IDENT:
            raise SelectorError(f"found '{key}', expected: identifier")
        if key_errors := qualified_name_errors(key):
            raise SelectorError(invalid("<nil>", key, key_errors))  # the parser's field path is nil
        if self._peek()[0] in (_Tok.END, _Tok.COMMA):
            operator = operator or "exists"
        if operator in ("exists", "!"):
            return self._build(key, operator, [])
        tok, lit = self._take(values=False)
        if tok not in _OPERATORS:
            raise SelectorError(f"found '{lit}', expected: {', '.join(_BINARY)}")
        operator = _OPERATORS[tok]
        values = self._set() if operator in ("in", "notin") else self._exact()
        return self._build(key, operator, sorted(values))  # sets.String.List() sorts

    def _build(self, key: str, operator: str, values: list[str]) -> Requirement:
        built, error = requirement(key, operator, values)
        if error:
            raise SelectorError(error)
        return built

    def _set(self) -> set[str]:
        tok, lit = self._take()
        if tok != _Tok.OPEN:
            raise SelectorError(f"found '{lit}' expected: '('")
        tok, lit = self._peek()
        if tok == _Tok.CLOSE:
            self._take()
            return {""}
        if tok not in (_Tok.IDENT, _Tok.COMMA):
            raise SelectorError(f"found '{lit}', expected: ',', ')' or identifier")
        values = self._identifiers()
        if self._take()[0] != _Tok.CLOSE:
            raise SelectorError(f"found '{lit}', expected: ')'")
        return values

    def _identifiers(self) -> set[str]:
        values: set[str] = set()
        while True:
            tok, lit = self._take()
            if tok == _Tok.IDENT:
                values.add(lit)
                after, after_lit = self._peek()
                if after == _Tok.CLOSE:
                    return values
                if after != _Tok.COMMA:
                    raise SelectorError(f"found '{after_lit}', expected: ',' or ')'")
            elif tok == _Tok.COMMA:
                if not values:
                    values.add("")  # "(,"
                after = self._peek()[0]
                if after == _Tok.CLOSE:
                    values.add("")  # ",)"
                    return values
                if after == _Tok.COMMA:
                    self._take()
                    values.add("")  # ",,"
            else:
                raise SelectorError(f"found '{lit}', expected: ',', or identifier")

    def _exact(self) -> set[str]:
        if self._peek()[0] in (_Tok.END, _Tok.COMMA):
            return {""}
        tok, lit = self._take()
        if tok == _Tok.IDENT:
            return {lit}
        raise SelectorError(f"found '{lit}', expected: identifier")


def parse(selector: str) -> Selector:
    """labels.Parse: raises SelectorError with the real message on bad input."""
    return Selector(_Parser(selector).parse())


def matches(selector: str, labels: dict[str, str]) -> bool:
    return parse(selector).matches(labels)
