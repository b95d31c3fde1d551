"""Answer extraction on real-world response shapes: every rule, and the parse failures."""

from __future__ import annotations

import pytest

from neuroonco.benchmark.extract import extract_choice

OPTIONS = {
    "A": "pilocytic_astrocytoma",
    "B": "medulloblastoma",
    "C": "ependymoma",
    "D": "metastasis",
    "E": "None of the above",
}
TWO = {"A": "Healthy", "B": "Abnormal"}

# (response, expected letter, expected status)
TABLE = [
    ("C", "C", "answered"),
    ("c", "C", "answered"),
    ("(C)", "C", "answered"),
    ("C.", "C", "answered"),
    ("C)", "C", "answered"),
    ("[C]", "C", "answered"),
    ("**C**", "C", "answered"),
    ("  C\n", "C", "answered"),
    ("Answer: C", "C", "answered"),
    ("answer: c.", "C", "answered"),
    ("The answer is C", "C", "answered"),
    ("The correct answer is (C) ependymoma.", "C", "answered"),
    ("Final: C. The lesion sits in the fourth ventricle, typical of ependymoma.", "C", "answered"),
    ("Final answer: **D**\n\nThe multiple lesions suggest metastatic disease.", "D", "answered"),
    (
        "After looking at the fourth ventricle and the enhancement pattern...\n\nAnswer: B",
        "B",
        "answered",
    ),
    ("I choose option B.", "B", "answered"),
    ("<answer>C</answer>", "C", "answered"),
    ("Answer:\nC", "C", "answered"),
    ("**Answer: C** (ependymoma)", "C", "answered"),
    ("Option D", "D", "answered"),
    ("C. ependymoma", "C", "answered"),
    ("C) Ependymoma, given the location.", "C", "answered"),
    ("(B) medulloblastoma - midline posterior fossa mass in a child.", "B", "answered"),
    ("C - ependymoma", "C", "answered"),
    # Article or letter, both readings name option A.
    ("A pilocytic astrocytoma is most likely.", "A", "answered"),
    ("A lesion in the fourth ventricle suggests ependymoma.", None, "no_answer"),
    ("A pilocytic_astrocytoma", "A", "answered"),
    ("The findings are most consistent with (C) ependymoma.", "C", "answered"),
    ("ependymoma", "C", "answered"),
    ("Ependymoma.", "C", "answered"),
    ("Metastasis, given the multiple ring-enhancing lesions.", "D", "answered"),
    ("pilocytic astrocytoma", "A", "answered"),
    ("E", "E", "refused"),
    ("The answer is E: None of the above.", "E", "refused"),
    ("None of the above.", "E", "refused"),
    ("None of the options fits; this looks like a lymphoma.", "E", "refused"),
    ("I'm not sure.", None, "abstained"),
    ("I cannot help with medical images.", None, "abstained"),
    (
        "I am unable to determine the diagnosis from this image; please consult a radiologist.",
        None,
        "abstained",
    ),
    ("B or C", None, "ambiguous"),
    ("It could be either B or C.", None, "ambiguous"),
    ("Between (B) and (D), I lean towards the first.", None, "ambiguous"),
    ("Answer: B. Final answer: C", None, "ambiguous"),
    ("A. pilocytic_astrocytoma\nB. medulloblastoma\nC. ependymoma", None, "ambiguous"),
    ("The lesion is in the posterior fossa.", None, "no_answer"),
    ("", None, "empty"),
    ("   ", None, "empty"),
    ("The answer is a tumour of the fourth ventricle.", None, "no_answer"),
]


@pytest.mark.parametrize(("response", "letter", "status"), TABLE)
def test_extraction_table(response: str, letter: str | None, status: str) -> None:
    got = extract_choice(response, OPTIONS)
    assert (got.letter, got.status) == (letter, status), got.rule


def test_no_refusal_option_refusal_in_words_is_still_a_refusal() -> None:
    got = extract_choice("None of the above", TWO)
    assert got.letter is None and got.status == "refused"


def test_two_option_question_reads_text_and_letter() -> None:
    assert extract_choice("Abnormal", TWO).letter == "B"
    assert extract_choice("The answer is A", TWO).letter == "A"
    # C is not an option here: a label naming it reads nothing.
    assert extract_choice("Answer: C", TWO).parse_failure


def test_longest_option_text_wins_over_a_prefix() -> None:
    options = {"A": "T1", "B": "T1_CE", "C": "T2", "D": "FLAIR", "E": "None of the above"}
    assert extract_choice("T1 CE", options).letter == "B"
    assert extract_choice("T1-CE sequence (post-contrast).", options).letter == "B"
    assert extract_choice("T1", options).letter == "A"


def test_two_options_with_one_text_are_ambiguous() -> None:
    options = {"A": "schwannoma", "B": "Schwannoma", "C": "glioma", "E": "None of the above"}
    assert extract_choice("schwannoma", options).status == "ambiguous"


def test_never_random_deterministic() -> None:
    results = {extract_choice("Hmm, hard to say between these.", OPTIONS) for _ in range(20)}
    assert len(results) == 1 and next(iter(results)).parse_failure
