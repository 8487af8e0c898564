r"""Pure answer-extraction helpers: text in, answer string out. No sympy, no signals, no I/O.

Shared by the math reward and the eval harness. Everything here is linear-time regex or scanning, so it is safe on
megabyte completions; numbers are parsed by `fractions.Fraction`, never `eval`. The functions that return a number
raise `NumberTooLong` when it has more than `MAX_DIGITS` digits.

Public bugs these helpers are written against (each has a row in tests/test_rewards_table.py):
- "The answer is 72." must give 72, not fail on the period;
- a regex for `\boxed` must escape its backslash: in a raw string, r"\boxed" is a word boundary and "oxed";
- "$1,234.50", "25%", "18 apples" and "18.00" are numbers with decoration, not mismatches;
- a hallucinated continuation ("18\nQuestion: Tom has 5 apples") is cut at a stop string before extraction.
- "3/4." and "#### 3/4." are 3/4 (a sentence's period after a denominator), "1 1/2" is a mixed number;
- "The answer is $\frac{3}{4}$" or "\(x = 5\)" is read from the math span, not as the last number "4".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

DEFAULT_STOP: tuple[str, ...] = (
    "\nQuestion:",
    "\nQ:",
    "\nProblem:",
    "\nHuman:",
    "\nUser:",
    "<|im_end|>",
    "<|endoftext|>",
    "<|eot_id|>",
    "</s>",
)
"""Markers after which a base model is writing the next few-shot example, not its own answer."""

# One number as models write it: optional minus (not after a digit/letter, so "10-3" is not "-3"), optional "$",
# then a mixed number ("1 1/2": one space, whole part not after "^" or a digit) or digits with well-formed thousands
# separators or plain digits, optional decimals, optional "/denominator". A denominator may be followed by a
# sentence's period ("3/4.") but not by decimals ("3/4.5" is no fraction).
_SIGN = r"(?:(?<![\w)\]])[-\u2212])?\s?\\?\$?\s?"
_MIXED = r"(?<![\w^_.,/])\d+ \d+\s?/\s?\d+(?!\d|\.\d|\s?/)"
_DECIMAL = r"(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"
_NUMBER_RE = re.compile(_SIGN + r"(?:" + _MIXED + r"|" + _DECIMAL + r"(?:\s?/\s?\d+(?!\d|\.\d))?)")
_MIXED_RE = re.compile(r"(-?)(\d+) (\d+)/(\d+)")
_STRICT_RE = re.compile(r"####\s*(" + _NUMBER_RE.pattern + ")")
# An answer phrase; what follows it is read by `_answer_after` (a math span or a number).
_ANSWER_PHRASE_RE = re.compile(r"answer\s*(?:is|=|:)\s*:?\s*(?:\*\*)?\s*", re.IGNORECASE)
# A number after an answer phrase, unless LaTeX goes on after it ("$2^{10}$", "$3\sqrt{2}$": the math span decides).
_ANSWER_NUMBER_RE = re.compile(
    r"\$?\s*(?:\\\(|\\\[|[(\[])?\s*(" + _NUMBER_RE.pattern + r")(?!\s*(?:[\^_{]|\\(?![)\]%$])))"
)
# Inline or display math right after an answer phrase; bounded, so a scan stays linear on long completions.
_MATH_SPAN_RE = re.compile(r"\$\$(.{1,300}?)\$\$|\$(.{1,300}?)\$|\\\((.{1,300}?)\\\)|\\\[(.{1,300}?)\\\]", re.DOTALL)
_LATEX_HINT_RE = re.compile(r"[\\^{]")
_ANSWER_PHRASES_TRIED = 16  # the last few answer phrases; an earlier one is a draft, not the answer
# \frac{3}{4}, \dfrac34, \tfrac{-3}{4}, with an optional whole part before it (a mixed number: math-verify reads
# "1\frac{1}{2}" as 3/2 too), rewritten as plain "3/4" or "1 1/2" so the number scanners see one number, not "4".
_TEXT_FRAC_RE = re.compile(
    r"(?:(?<![\w^_.,])(\d+)\s*)?\\[dt]?frac\s*(?:\{\s*(-?\d+)\s*\}|(\d))\s*(?:\{\s*(\d+)\s*\}|(\d))"
)
_BRACE_RE = re.compile(r"[{}]")
_BOXED_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")  # "\\" is the backslash itself; a lone r"\b" is a word boundary

# LaTeX decoration around a number inside \boxed{}: units in \text{}, escaped $ and %, degree signs, thin spaces.
_LATEX_NOISE = [
    (re.compile(r"\\(?:text|textbf|mathrm|mbox)\s*\{[^{}]*\}"), ""),
    (re.compile(r"\^\s*\{?\s*\\circ\s*\}?"), ""),
    (re.compile(r"\\(?:left|right|displaystyle|[,;:! ])"), ""),
    (re.compile(r"\{,\}"), ","),
    (re.compile(r"\\?[$%]"), ""),
    (re.compile(r"\s+"), ""),
]
_FRAC_RE = re.compile(r"^(-?)(\d+)?\\[dt]?frac(?:\{(-?\d+)\}|(\d))(?:\{(\d+)\}|(\d))$")
_LATEX_MIXED_RE = re.compile(r"(?<![\d.,])(\d+)\s+(\d+)\s*/\s*(\d+)(?![\d/])")
_PLAIN_NUMBER_RE = re.compile(r"^" + _NUMBER_RE.pattern + r"$")


MAX_DIGITS = 1000
"""Longer numbers are no answer to compare (and Python refuses to convert over 4,300 digits)."""


class NumberTooLong(ValueError):
    """A number in the text has more than MAX_DIGITS digits."""


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """Cut `text` at the first occurrence of any stop string (the stop string itself is dropped)."""
    end = len(text)
    for marker in stop:
        if marker:
            at = text.find(marker, 0, end)
            if at != -1:
                end = at
    return text[:end]


def parse_number(text: str) -> Fraction | None:
    """A number as written ("-1,234.50", "$18", "3/4", "18.") to an exact Fraction; None if it is not one number.

    Raises NumberTooLong beyond MAX_DIGITS digits.
    """
    if len(text) > MAX_DIGITS and sum(c.isdigit() for c in text) > MAX_DIGITS:
        raise NumberTooLong(f"a number with {sum(c.isdigit() for c in text):,} digits (limit {MAX_DIGITS:,})")
    s = text.strip().replace("\u2212", "-").replace("$", "").replace("\\", "").rstrip(".").strip()
    if not s or _PLAIN_NUMBER_RE.fullmatch(s) is None:
        return None
    mixed = _MIXED_RE.fullmatch(re.sub(r"\s*/\s*", "/", re.sub(r"^-\s+", "-", s)))
    if mixed:  # "1 1/2" is one and a half; an improper "3 5/4" is not a number anyone writes
        sign, whole, num, den = mixed.groups()
        if not 0 < int(num) < int(den):
            return None
        return (int(whole) + Fraction(int(num), int(den))) * (-1 if sign else 1)
    s = re.sub(r"[,\s]", "", s)  # the number pattern allows a newline or tab after the minus sign or around "/"
    num, _, den = s.partition("/")
    value = Fraction(num)
    if den:
        if int(den) == 0:
            return None
        value /= int(den)
    return value


def format_number(value: Fraction) -> str:
    """Canonical text of a number: "18", "-0.5", or "1/3" when the decimal does not terminate."""
    if value.denominator == 1:
        return str(value.numerator)
    den = value.denominator
    while den % 2 == 0:
        den //= 2
    while den % 5 == 0:
        den //= 5
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    text = f"{float(value):.15f}".rstrip("0")  # terminating decimal: exact within 15 places for GSM8K magnitudes
    return text if Fraction(text) == value else f"{value.numerator}/{value.denominator}"


def _normalized(match_text: str) -> str | None:
    value = parse_number(match_text)
    return None if value is None else format_number(value)


def extract_gsm8k_gold(answer: str) -> str | None:
    """The gold number of a GSM8K `answer` field: the text after the last "####", normalised ("1,600" -> "1600").

    Returns None when there is no "####" or what follows it is not a number.
    """
    head, sep, tail = answer.rpartition("####")
    if not sep:
        return None
    return _normalized(tail.strip().split("\n", 1)[0])


def extract_gsm8k_strict(text: str) -> str | None:
    """Strict extraction: the number after the last "#### " in `text`, normalised; None if there is none.

    This is GSM8K's own answer format (lm-eval's "strict-match").
    """
    matches = _STRICT_RE.findall(text)
    return _normalized(matches[-1]) if matches else None


def extract_last_number(text: str) -> str | None:
    """Flexible extraction: the last number in `text`, normalised ("$1,234." -> "1234"); None if there is none."""
    last = None
    for last in _NUMBER_RE.finditer(text):
        pass
    return None if last is None else _normalized(last.group(0))


def extract_answer_is(text: str) -> str | None:
    """The number after the last "answer is" / "answer:" phrase, normalised; None if there is none."""
    found, source = extract_answer_phrase(text)
    return found if source == "answer_is" else None


def extract_answer_phrase(text: str) -> tuple[str | None, str]:
    r"""What follows the last answer phrase that is followed by an answer: a number ("The answer is 3/4.") or
    inline/display math ("The answer is $\frac{3}{4}$", "answer: \(x = 5\)"). Returns (number, "answer_is"),
    (LaTeX that is more than a number, "answer_latex"), or (None, "none")."""
    phrases = [m.end() for m in _ANSWER_PHRASE_RE.finditer(text)]
    for end in reversed(phrases[-_ANSWER_PHRASES_TRIED:]):
        found = _answer_after(text, end)
        if found[0] is not None:
            return found
    return None, "none"


def _answer_after(text: str, pos: int) -> tuple[str | None, str]:
    span = _MATH_SPAN_RE.match(text, pos)
    if span:
        content = next(g for g in span.groups() if g is not None)
        number = number_from_latex(content)
        if number is not None:
            return number, "answer_is"
        if _LATEX_HINT_RE.search(content):  # "$2^{10}$": math-verify decides; "$18. Then $" was currency
            return content.strip(), "answer_latex"
    number = _ANSWER_NUMBER_RE.match(text, pos)
    if number:
        return _normalized(number.group(1)), "answer_is"
    return None, "none"


def fractions_as_text(text: str) -> str:
    r"""`\frac{3}{4}` -> " 3/4", `2\dfrac12` -> " 2 1/2" (a mixed number), so a number scan reads one number."""

    def plain(m: re.Match) -> str:
        whole, num, den = m.group(1), m.group(2) or m.group(3), m.group(4) or m.group(5)
        return f" {whole} {num}/{den}" if whole else f" {num}/{den}"

    return _TEXT_FRAC_RE.sub(plain, text)


def last_boxed(text: str) -> str | None:
    r"""Content of the last `\boxed{...}` (or `\fbox{...}`) with braces matched; None if there is none.

    One pass over the braces with a stack, so 10,000 nested braces or 100,000 unclosed boxes cost linear time, not
    a recursion or a rescan per box. An unclosed last box falls back to an earlier closed one.
    """
    starts = [m.end() - 1 for m in _BOXED_RE.finditer(text)]  # positions of each box's "{"
    if not starts:
        return None
    boxes, closing, stack = set(starts), {}, []
    for brace in _BRACE_RE.finditer(text, starts[0]):
        if brace.group() == "{":
            stack.append(brace.start())
        elif stack:
            opened = stack.pop()
            if opened in boxes:
                closing[opened] = brace.start()
    for start in reversed(starts):
        if start in closing:
            return text[start + 1 : closing[start]]
    return None


def number_from_latex(latex: str) -> str | None:
    r"""A boxed answer that is just a decorated number ("\$1{,}000", "18 \text{ apples}", "\frac{3}{4}", "x = 5")
    normalised; None if the content is more than one number (then a symbolic comparison must decide)."""
    s = _LATEX_MIXED_RE.sub(r"\1\\frac{\2}{\3}", latex)  # "1 1/2" before spaces go: one and a half, not 11/2
    for pattern, repl in _LATEX_NOISE:
        s = pattern.sub(repl, s)
    s = s.rpartition("=")[2]  # "x=5" -> "5"
    frac = _FRAC_RE.fullmatch(s)
    if frac:
        sign, whole = frac.group(1), frac.group(2)
        num, den = frac.group(3) or frac.group(4), frac.group(5) or frac.group(6)
        if int(den) == 0:
            return None
        value = Fraction(int(num), int(den)) + int(whole or 0)
        return format_number(value * (-1 if sign else 1))
    return _normalized(s)


def extract_gsm8k_answer(text: str) -> tuple[str | None, str]:
    """The model's numeric answer and where it came from, in priority order:
    `\\boxed{}`, "#### N", "The answer is N", then the last number. Returns (None, "none") if nothing is found.

    A boxed answer that is not a plain number is returned as raw LaTeX with source "boxed_latex", and so is math
    after an answer phrase ("answer_latex"). `\\frac` in the text is read as a fraction ("$\\frac{3}{4}$" -> "3/4").
    """
    boxed = last_boxed(text)
    if boxed is not None:
        number = number_from_latex(boxed)
        return (number, "boxed") if number is not None else (boxed, "boxed_latex")
    text = fractions_as_text(text)
    found = extract_gsm8k_strict(text)
    if found is not None:
        return found, "####"
    found, source = extract_answer_phrase(text)
    if found is not None:
        return found, source
    found = extract_last_number(text)
    return (found, "last_number") if found is not None else (None, "none")
