"""The web page keeps to the one contract: error codes and events come from `shared/`.

No browser: the page's ES modules are read as text and tokenized (comments skipped,
strings, template literals and regular expressions told apart), so a code in a comment
does not count and a code hidden in a template or a regex does.

- `web/js/codes.js` is exactly what `whisp_shared.codes.render_js()` writes, and
  `web/js/limits.js` what `whisp_shared.user_settings.render_limits_js()` does;
- every `Code.NAME` the page uses exists in `ErrorCode`, and nothing reaches into `Code`
  by a computed name;
- no module but codes.js spells a server code itself (as a string, an object key, a
  property, or a prefix/suffix like "_unavailable" in a pattern): a renamed code must break
  loudly at `Code.X`, not silently stop matching;
- the page knows only the user-facing events (snapshots), never the raw bus events;
- the modules' imports resolve to names their targets export, and no module grows past
  the size the page's structure keeps them under.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import pytest

from whisp_shared import codes as codes_module
from whisp_shared import user_settings
from whisp_shared.codes import ErrorCode
from whisp_shared.events import Event
from whisp_shared.views import UserEvent

WEB = Path(__file__).resolve().parents[2] / "gateway" / "src" / "whisp_gateway" / "web"
JS = WEB / "js"
CODES_JS = JS / "codes.js"
LIMITS_JS = JS / "limits.js"
MAX_MODULE_LINES = 400

CODE_VALUES = {code.value for code in ErrorCode}
CODE_NAMES = {code.name for code in ErrorCode}


def modules(*, with_codes: bool = False) -> list[Path]:
    found = sorted(JS.glob("*.js"))
    assert found, f"no modules under {JS}"
    return [p for p in found if with_codes or p not in (CODES_JS, LIMITS_JS)]


def module_ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


# --- a small JavaScript tokenizer ---------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # ident | number | punct | string | template | regex
    value: str  # strings and template chunks: their decoded text; regex: its body
    line: int


# A "/" divides after a value (a name, a number, `)` or `]`; `}` is taken as the end of an
# object literal) and starts a regular expression anywhere else, or after these words.
_VALUE_END = {")", "]", "}"}
_REGEX_AFTER_WORDS = {
    "return", "typeof", "case", "do", "else", "in", "of", "new", "delete", "void",
    "throw", "yield", "await", "instanceof",
}  # fmt: skip
_PUNCT = sorted(
    ["=>", "...", "===", "!==", "==", "!=", "<=", ">=", "&&", "||", "??", "?.", "**",
     "++", "--", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<", ">>", ">>>"],
    key=len,
    reverse=True,
)  # fmt: skip
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "v": "\v", "0": "\0"}


class Tokenizer:
    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.line = 1
        self.out: list[Token] = []

    def run(self) -> list[Token]:
        self._scan(until_brace=False)
        return self.out

    def _emit(self, kind: str, value: str, line: int) -> None:
        self.out.append(Token(kind, value, line))

    def _regex_allowed(self) -> bool:
        if not self.out:
            return True
        last = self.out[-1]
        if last.kind == "punct":
            return last.value not in _VALUE_END
        return last.kind == "ident" and last.value in _REGEX_AFTER_WORDS

    def _scan(self, *, until_brace: bool) -> None:
        depth = 0
        src = self.src
        while self.pos < len(src):
            ch = src[self.pos]
            if ch == "\n":
                self.line += 1
                self.pos += 1
            elif ch.isspace():
                self.pos += 1
            elif src.startswith("//", self.pos):
                end = src.find("\n", self.pos)
                self.pos = len(src) if end < 0 else end
            elif src.startswith("/*", self.pos):
                end = src.find("*/", self.pos + 2)
                assert end >= 0, f"unterminated comment at line {self.line}"
                self.line += src.count("\n", self.pos, end)
                self.pos = end + 2
            elif ch in "'\"":
                self._string(ch)
            elif ch == "`":
                self._template()
            elif ch == "/" and self._regex_allowed():
                self._regex()
            elif ch.isalpha() or ch in "_$":
                m = re.compile(r"[\w$]+").match(src, self.pos)
                assert m is not None
                self._emit("ident", m.group(), self.line)
                self.pos = m.end()
            elif ch.isdigit():
                m = re.compile(r"[\w.]+").match(src, self.pos)
                assert m is not None
                self._emit("number", m.group(), self.line)
                self.pos = m.end()
            else:
                if until_brace and ch == "}" and depth == 0:
                    self.pos += 1
                    return  # the end of a template's ${…}
                depth += {"{": 1, "}": -1}.get(ch, 0)
                op = next((p for p in _PUNCT if src.startswith(p, self.pos)), ch)
                self._emit("punct", op, self.line)
                self.pos += len(op)
        assert not until_brace, "unterminated ${ in a template literal"

    def _escape(self) -> str:
        """At a backslash: the character it stands for (line continuations vanish)."""
        nxt = self.src[self.pos + 1]
        self.pos += 2
        if nxt == "\n":
            self.line += 1
            return ""
        if nxt == "u" and self.src[self.pos] == "{":
            end = self.src.index("}", self.pos)
            char = chr(int(self.src[self.pos + 1 : end], 16))
            self.pos = end + 1
            return char
        if nxt in "ux":
            width = 4 if nxt == "u" else 2
            char = chr(int(self.src[self.pos : self.pos + width], 16))
            self.pos += width
            return char
        return _ESCAPES.get(nxt, nxt)

    def _string(self, quote: str) -> None:
        line, chars = self.line, []
        self.pos += 1
        while True:
            ch = self.src[self.pos]
            assert ch != "\n", f"unterminated string at line {line}"
            if ch == "\\":
                chars.append(self._escape())
            elif ch == quote:
                self.pos += 1
                break
            else:
                chars.append(ch)
                self.pos += 1
        self._emit("string", "".join(chars), line)

    def _template(self) -> None:
        line, chars = self.line, []
        self.pos += 1
        while True:
            ch = self.src[self.pos]
            if ch == "\\":
                chars.append(self._escape())
            elif ch == "`":
                self.pos += 1
                self._emit("template", "".join(chars), line)
                return
            elif self.src.startswith("${", self.pos):
                self._emit("template", "".join(chars), line)
                chars, self.pos = [], self.pos + 2
                self._scan(until_brace=True)
                line = self.line
            else:
                if ch == "\n":
                    self.line += 1
                chars.append(ch)
                self.pos += 1

    def _regex(self) -> None:
        line, start, in_class = self.line, self.pos + 1, False
        self.pos += 1
        while True:
            ch = self.src[self.pos]
            assert ch != "\n", f"unterminated regex at line {line}"
            if ch == "\\":
                self.pos += 2
                continue
            if ch == "[":
                in_class = True
            elif ch == "]":
                in_class = False
            elif ch == "/" and not in_class:
                break
            self.pos += 1
        body = self.src[start : self.pos]
        self.pos += 1
        while self.pos < len(self.src) and self.src[self.pos].isalpha():  # flags
            self.pos += 1
        self._emit("regex", body, line)


def tokens(path: Path) -> list[Token]:
    return Tokenizer(path.read_text(encoding="utf-8")).run()


def test_the_tokenizer_tells_strings_templates_regexes_and_comments_apart() -> None:
    source = r"""
      // "rate_limited" in a comment does not count
      /* nor "gave_up" here */
      const a = 'it\'s', b = "x\u0041", c = `one ${f(`in ${"deep"}`)} two`;
      const d = x / 2 / y, e = /_unavailable$/i.test(code);
      if (n) return /a[/]b/;
    """
    found = Tokenizer(source).run()
    strings = [t.value for t in found if t.kind in ("string", "template")]
    assert strings == ["it's", "xA", "one ", "in ", "deep", "", " two"]
    assert [t.value for t in found if t.kind == "regex"] == ["_unavailable$", "a[/]b"]
    assert [t.line for t in found if t.kind == "regex"] == [5, 6]


# --- the generated copy -------------------------------------------------------------------


def test_codes_js_is_the_generated_copy_of_the_enum() -> None:
    assert CODES_JS.read_text(encoding="utf-8") == codes_module.render_js(), (
        "web/js/codes.js is stale: regenerate it with "
        "`python -m whisp_shared.codes > gateway/src/whisp_gateway/web/js/codes.js`"
    )


def test_limits_js_is_the_generated_copy_of_the_settings_bounds() -> None:
    assert LIMITS_JS.read_text(encoding="utf-8") == user_settings.render_limits_js(), (
        "web/js/limits.js is stale: regenerate it with `python -m whisp_shared.user_settings"
        " > gateway/src/whisp_gateway/web/js/limits.js`"
    )


# --- how the page names codes -------------------------------------------------------------


@pytest.mark.parametrize("path", modules(), ids=module_ids(modules()))
def test_every_code_the_page_names_exists(path: Path) -> None:
    found = tokens(path)
    problems = []
    uses_code = False
    for i, tok in enumerate(found[:-1]):
        if tok.kind != "ident" or tok.value != "Code":
            continue
        if i > 0 and found[i - 1].kind == "punct" and found[i - 1].value in (".", "?."):
            continue  # someone else's `.Code` property
        after = found[i + 1]
        if after.kind == "punct" and after.value in ("[", "?.["):
            problems.append(f"line {tok.line}: Code[…] (name codes as Code.NAME)")
        elif after.kind == "punct" and after.value in (".", "?."):
            uses_code = True
            name = found[i + 2]
            if name.value not in CODE_NAMES:
                problems.append(f"line {tok.line}: Code.{name.value} is not an ErrorCode")
    if uses_code:
        source = path.read_text(encoding="utf-8")
        imported = re.search(r'import\s*\{[^}]*\bCode\b[^}]*\}\s*from\s*"\./codes\.js"', source)
        if not imported:
            problems.append('uses Code without `import { Code } from "./codes.js"`')
    assert not problems, f"{path.name}: " + "; ".join(problems)


def _code_fragment(text: str) -> bool:
    """`_unavailable`, `upstream_`: a piece that matches codes by pattern, not by name."""
    if not re.fullmatch(r"_[a-z0-9_]+|[a-z0-9_]+_", text):
        return False
    return any(v.startswith(text) or v.endswith(text) for v in CODE_VALUES)


def spelled_codes(found: list[Token]) -> list[str]:
    """Where `found` names a server code by its value rather than as `Code.X`."""
    problems = []
    for i, tok in enumerate(found):
        before = found[i - 1] if i else None
        after = found[i + 1] if i + 1 < len(found) else None
        if tok.kind in ("string", "template"):
            if tok.value in CODE_VALUES or _code_fragment(tok.value):
                problems.append(f"line {tok.line}: the string {tok.value!r}")
        elif tok.kind == "regex":
            words = re.findall(r"[a-z0-9_]+", tok.value)
            if any(word in CODE_VALUES or _code_fragment(word) for word in words):
                problems.append(f"line {tok.line}: the pattern /{tok.value}/")
        elif tok.kind == "ident" and tok.value in CODE_VALUES:
            is_key = after is not None and after.kind == "punct" and after.value == ":"
            is_property = (
                before is not None and before.kind == "punct" and before.value in (".", "?.")
            )
            if is_key or is_property:
                problems.append(f"line {tok.line}: the name {tok.value!r} (a key or property)")
    return problems


@pytest.mark.parametrize("path", modules(), ids=module_ids(modules()))
def test_no_module_spells_a_server_code_itself(path: Path) -> None:
    problems = spelled_codes(tokens(path))
    assert not problems, (
        f"{path.name} spells server codes itself; use Code.X from codes.js "
        "(the page's own codes are ClientCode / NoticeCode and must not reuse a server "
        "code's value): " + "; ".join(problems)
    )


@pytest.mark.parametrize(
    "source",
    [
        'if (error.code === "agent_unavailable") {}',
        "if (code == 'rate_limited') {}",
        'if ("unknown_agent" === code) {}',
        'if (["upload_too_large", "audio_too_long"].includes(code)) {}',
        "switch (code) { case `gave_up`: break; }",
        'const AGENT_GONE = new Set(["unknown_agent"]);',
        "if (/_unavailable$/.test(code)) {}",
        "const ok = x / 2, gone = /^(unknown_agent|agent_unavailable)$/.test(code);",
        'if (code.startsWith("upstream_")) {}',
        "const titles = { audio_too_long: 'Too long' };",
        "const title = TITLES.audio_too_long;",
        "const title = TITLES?.audio_too_long;",
        'const text = `${code === "gave_up" ? "again" : ""}`;',
    ],
)
def test_the_scan_catches_a_spelled_code(source: str) -> None:
    assert spelled_codes(Tokenizer(source).run()), f"not caught: {source}"


def test_the_scan_leaves_comments_prose_and_code_names_alone() -> None:
    source = """
      // once: if (code === "rate_limited")
      if (code === Code.RATE_LIMITED) say("The agent service is unavailable right now.");
      const kind = "network", MIC = { denied: "Microphone blocked" };
    """
    assert not spelled_codes(Tokenizer(source).run())


# --- events -----------------------------------------------------------------------------


def _event_types(tp: object) -> set[str]:
    """The `type` values of an event model, a union of them, or an Annotated union."""
    if typing.get_origin(tp) is typing.Annotated:
        return _event_types(typing.get_args(tp)[0])
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return set().union(*(_event_types(arg) for arg in typing.get_args(tp)))
    field = tp.model_fields["type"]  # type: ignore[attr-defined]
    return {field.default}


RAW_EVENTS = _event_types(Event)
USER_EVENTS = _event_types(UserEvent)


def test_the_event_lists_are_what_this_test_expects() -> None:
    assert {"recording.completed", "transcript.ready", "transcription.failed",
            "agent.responded", "agent.failed"} <= RAW_EVENTS  # fmt: skip
    assert "transcript.updated" in USER_EVENTS
    assert not RAW_EVENTS & USER_EVENTS


def test_the_page_never_mentions_a_raw_bus_event() -> None:
    problems = []
    for path in sorted(p for p in WEB.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace")
        for name in sorted(RAW_EVENTS):
            for m in re.finditer(re.escape(name), text):
                line = text.count("\n", 0, m.start()) + 1
                problems.append(f"{path.relative_to(WEB)}:{line}: {name}")
    assert not problems, "the page rebuilds state from raw bus events again: " + "; ".join(problems)


def test_the_page_listens_for_the_snapshots_the_gateway_sends() -> None:
    strings = {t.value for t in tokens(JS / "events.js") if t.kind == "string"}
    assert strings >= USER_EVENTS, f"events.js does not listen for {USER_EVENTS - strings}"


# --- the modules fit together -----------------------------------------------------------

_IMPORT = re.compile(r'import\s*\{([^}]*)\}\s*from\s*"(\./[^"]+)"')
_EXPORT = re.compile(r"export\s+(?:async\s+)?(?:function\*?|class|const|let|var)\s+([\w$]+)")


def _exports(path: Path) -> set[str]:
    source = path.read_text(encoding="utf-8")
    names = set(_EXPORT.findall(source))
    for group in re.findall(r"export\s*\{([^}]*)\}", source):
        names |= {part.split(" as ")[-1].strip() for part in group.split(",") if part.strip()}
    return names


@pytest.mark.parametrize("path", modules(with_codes=True), ids=module_ids(modules(with_codes=True)))
def test_imports_resolve_to_exported_names(path: Path) -> None:
    problems = []
    for names, target in _IMPORT.findall(path.read_text(encoding="utf-8")):
        module = (path.parent / target).resolve()
        if not module.is_file():
            problems.append(f"{target} does not exist")
            continue
        exported = _exports(module)
        for part in names.split(","):
            name = part.strip().split(" as ")[0].strip()
            if name and name not in exported:
                problems.append(f"{name} is not exported by {target}")
    assert not problems, f"{path.name}: " + "; ".join(problems)


def test_index_loads_the_entry_module() -> None:
    html = (WEB / "index.html").read_text(encoding="utf-8")
    assert '<script type="module" src="js/main.js"></script>' in html


@pytest.mark.parametrize("path", modules(), ids=module_ids(modules()))
def test_modules_stay_small(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_MODULE_LINES, f"{path.name} has {lines} lines: split it by what it does"
