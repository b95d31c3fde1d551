"""What a model reads for one benchmark question: the question, its options, and how to answer.

Closed questions list every option as `A. text` and ask for one letter, so the extraction rules
(benchmark/extract.py) have a well-defined target; open questions ask for free text. Option texts
are shown as the file spells them: the benchmark file, not this prompt, decides the wording.
"""

from __future__ import annotations

from neuroonco.benchmark.files import ClosedQuestion, OpenQuestion

CLOSED_INSTRUCTION = (
    "Answer with the letter of exactly one option (for example: A). "
    "If no option is correct, choose the option that says so."
)
OPEN_INSTRUCTION = "Answer in one to three sentences, based on what the image shows."


def closed_prompt(question: ClosedQuestion) -> str:
    """The question, one `LETTER. text` line per option, and the one-letter instruction."""
    lines = [question.question.strip(), "", "Options:"]
    lines += [f"{letter}. {text}" for letter, text in question.options.items()]
    letters = ", ".join(question.options)
    lines += ["", f"{CLOSED_INSTRUCTION} Valid letters: {letters}."]
    return "\n".join(lines)


def open_prompt(question: OpenQuestion) -> str:
    """The question and the free-text instruction."""
    return f"{question.question.strip()}\n\n{OPEN_INSTRUCTION}"


def prompt_for(question: ClosedQuestion | OpenQuestion) -> str:
    if isinstance(question, ClosedQuestion):
        return closed_prompt(question)
    return open_prompt(question)
