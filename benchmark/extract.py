"""Which option a free-text response chose: deterministic rules, never a random pick.

VLMEvalKit and lmms-eval fall back to a random letter when they cannot read a response; a guess
then scores 1/k for nothing. Here an unreadable response is a parse failure and counts as wrong.
The rules, tried in this order on the response with markdown emphasis (`**`, `__`, backticks)
removed:

1. empty                  -> parse failure `empty`
2. bare letter            `C`, `(C)`, `C.`, `C)`, `[C]`, `**C**` and nothing else -> C
3. hedge                  two option letters joined by "or" / "and" (`B or C`, `between B and C`)
                          -> parse failure `ambiguous`
4. labelled letter        `Answer: C`, `The answer is C`, `Final: C`, `Final answer: (C) ...`,
                          `I choose C`, `Option C`... -> C; two labels naming different letters
                          -> `ambiguous`
5. leading letter         the response starts with `C.`, `C)`, `C:`, `(C)`, `C -`, or `C ` followed
                          by C's own text -> C (an explanation may follow). A bare leading "A" is
                          the article unless followed by A's text.
6. letter with its text   somewhere `C. ependymoma` / `(C) ependymoma` (the letter then that very
                          option's text); one such letter -> C. Several (a response echoing the
                          option list) -> `ambiguous`, checked before rule 5
7. option text            the response is exactly one option's text, or starts with it
                          (case, `_`, `-` ignored; the longest matching text wins) -> that option
8. refusal in words       "none of the above" / "none of the options" / "none of these" -> the
                          refusal option (status `refused` even when the question offers none)
9. abstention             "I'm not sure", "I cannot help with medical images", "unable to
                          determine"... -> parse failure `abstained`: it says nothing, unlike
                          "None of the above", which says no option is right
10. anything else         -> parse failure `no_answer`

Lowercase letters count only where they cannot be a word: bare, or followed by `.`, `)`, `:` or
the end (so "The answer is a glioma" names no letter).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from neuroonco.benchmark.files import is_refusal_text

STATUSES = ("answered", "refused", "abstained", "ambiguous", "no_answer", "empty")
PARSE_FAILURES = frozenset({"abstained", "ambiguous", "no_answer", "empty"})

_EMPHASIS = re.compile(r"\*\*|__|`+")
_LABEL = (
    r"(?:final\s+answer|correct\s+answer|best\s+answer|my\s+answer|the\s+answer|answer|final"
    r"|correct\s+option|best\s+option|option|choice|i\s+choose|i\s+would\s+choose|i'd\s+choose"
    r"|i\s+pick|i\s+would\s+pick|i\s+select|i\s+would\s+go\s+with|i'd\s+go\s+with|go\s+with"
    r"|i\s+think\s+it\s+is|i\s+think\s+it's|i\s+think)"
)
_REFUSAL_WORDS = re.compile(r"\bnone\s+of\s+(?:the\s+above|the\s+options|these|them)\b", re.I)
_ABSTENTION = re.compile(
    r"\b(?:i'?m\s+not\s+sure|i\s+am\s+not\s+sure|not\s+certain|i\s+don'?t\s+know|i\s+do\s+not\s+know"
    r"|can(?:no|')t\s+(?:determine|tell|say|help|assist|provide|answer|be\s+sure|diagnose|interpret)"
    r"|cannot\s+(?:determine|tell|say|help|assist|provide|answer|diagnose|interpret)"
    r"|unable\s+to|not\s+able\s+to|impossible\s+to\s+(?:tell|determine|say)"
    r"|not\s+possible\s+to\s+(?:tell|determine|say)|insufficient\s+information"
    r"|consult\s+a|as\s+an\s+ai|i\s+(?:can|will)\s+not)",
    re.I,
)


@dataclass(frozen=True)
class Extraction:
    """The option a response chose (`letter`), how it was read (`rule`) and its `status`."""

    letter: str | None
    status: str  # one of STATUSES
    rule: str

    @property
    def parse_failure(self) -> bool:
        return self.status in PARSE_FAILURES


def _norm(text: str) -> str:
    text = text.lower().replace("_", " ").replace("-", " ")
    text = re.sub(r"[^\w\s/]", " ", text)
    return " ".join(text.split())


def _letter_group(letters: list[str]) -> str:
    upper = "".join(letters)
    lower = upper.lower()
    # Uppercase anywhere it stands alone; lowercase only where it cannot be a word.
    return rf"(?:(?<![A-Za-z])([{upper}])(?![A-Za-z])|(?<![A-Za-z])([{lower}])(?=[.):\]]|\s*$))"


def _found(match: re.Match[str]) -> str:
    return next(g for g in match.groups() if g).upper()


class Extractor:
    """The rules above for one question's options."""

    def __init__(self, options: dict[str, str]) -> None:
        self.options = options
        self.letters = sorted(options)
        self.refusal = next((k for k, t in options.items() if is_refusal_text(t)), None)
        group = _letter_group(self.letters)
        upper = "".join(self.letters)
        self._bare = re.compile(rf"^[\s(\[]*([{upper}{upper.lower()}])[\s.):\]]*$")
        self._hedge = re.compile(
            rf"(?<![A-Za-z])\(?([{upper}])\)?\s*(?:,\s*)?(?:or|and|/)\s+(?:option\s+)?\(?([{upper}])\)?(?![A-Za-z])"
        )
        self._labelled = re.compile(
            rf"(?i:{_LABEL})\s*(?:is|would\s+be|=)?\s*[:\-–—>]?\s*(?:option\s+|letter\s+)?[(\[]?{group}",
        )
        self._leading = re.compile(rf"^\s*(?:\(([{upper}])\)|([{upper}])\s*(?:[.):\]]|\s[-–—]))")
        self._texts = {k: _norm(t) for k, t in options.items()}

    def extract(self, response: str | None) -> Extraction:
        text = _EMPHASIS.sub("", response or "").strip()
        if not text:
            return Extraction(None, "empty", "empty")
        bare = self._bare.match(text)
        if bare:
            return self._choose(bare.group(1).upper(), "bare letter")
        for match in self._hedge.finditer(text):
            if match.group(1) != match.group(2):
                return Extraction(None, "ambiguous", "hedge between options")
        labelled = {_found(m) for m in self._labelled.finditer(text)}
        if len(labelled) > 1:
            return Extraction(None, "ambiguous", "labels name different letters")
        if labelled:
            return self._choose(labelled.pop(), "labelled letter")
        with_text = self._letters_with_text(text)
        if len(with_text) > 1:
            return Extraction(None, "ambiguous", "several letters given with their text")
        leading = self._leading_letter(text)
        if leading:
            return self._choose(leading, "leading letter")
        if with_text:
            return self._choose(with_text.pop(), "letter with its text")
        by_text = self._option_text(text)
        if by_text == "":
            return Extraction(None, "ambiguous", "two options share the text")
        if by_text:
            return self._choose(by_text, "option text")
        if _REFUSAL_WORDS.search(text):
            return Extraction(self.refusal, "refused", "refusal in words")
        if _ABSTENTION.search(text):
            return Extraction(None, "abstained", "abstention")
        return Extraction(None, "no_answer", "no option named")

    def _choose(self, letter: str, rule: str) -> Extraction:
        status = "refused" if letter == self.refusal else "answered"
        return Extraction(letter, status, rule)

    def _leading_letter(self, text: str) -> str | None:
        match = self._leading.match(text)
        if match:
            return match.group(1) or match.group(2)
        first, _, rest = text.partition(" ")
        if first in self.options and _norm(rest).startswith(self._texts[first]):
            return first
        return None

    def _letters_with_text(self, text: str) -> set[str]:
        found = set()
        for letter, option in self.options.items():
            words = r"[\s_\-]+".join(re.escape(w) for w in re.split(r"[\s_\-]+", option.strip()))
            # The letter exactly as written (uppercase); the option's words in any case.
            pattern = rf"(?<![A-Za-z])[(\[]?{letter}[)\].:]?\s*[-–—]?\s*(?i:{words})(?![A-Za-z])"
            if re.search(pattern, text):
                found.add(letter)
        return found

    def _option_text(self, text: str) -> str | None:
        """The option the response is, or starts with; "" if two options tie; None if none."""
        norm = _norm(text)
        best: list[str] = []
        best_len = 0
        for letter, option in self._texts.items():
            if option and (norm == option or norm.startswith(option + " ")):
                if len(option) > best_len:
                    best, best_len = [letter], len(option)
                elif len(option) == best_len:
                    best.append(letter)
        if len(best) > 1:
            return ""
        return best[0] if best else None


def extract_choice(response: str | None, options: dict[str, str]) -> Extraction:
    """Read the option a response chose among `options` ({letter: text})."""
    return Extractor(options).extract(response)
