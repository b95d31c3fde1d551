"""Known concepts outside our vocabulary, as MM-NeuroOnco's benchmark and pipeline spell them.

A versioned table: bump :data:`OOV_VERSION` whenever a concept is added, removed or re-spelled, so
an audit or coverage report can say which table it used. Each field lists ``(concept, pattern)``
pairs; a pattern is a regular expression searched in the phrase form of a text (lower case, every
run of other characters one space: "T1_weighted-MRI" -> "t1 weighted mri"). The first pattern that
matches names the concept, so two spellings of one concept ("DWI", "Diffusion-weighted imaging")
share a name and can be compared. The vocabulary consults this table before its word rules, which
is what keeps an out-of-vocabulary concept off a near miss ("Diffuse" is not ``multifocal``).
"""

from __future__ import annotations

import re
from functools import lru_cache

OOV_VERSION = 1  # bump on any change of concept or spelling

# Negated findings asked in every lesion field ("No lesion", "No visible lesion", "Not measurable").
_NO_FINDING: tuple[tuple[str, str], ...] = (
    ("no_spread", r"^no (visible |abnormal )*(lesion )?spread\b"),
    ("no_mass_effect", r"^no mass effect\b"),
    ("no_defined_shape", r"^no (discrete|defined|definable|distinct|discernible) shape\b"),
    ("no_distinct_margin", r"^no distinct lesion margin"),
    ("not_measurable", r"^not measurable$|too small to measure"),
    ("indeterminate", r"^cannot be determined\b|^not applicable$|^indeterminate$"),
    (
        "no_lesion",
        r"^(no|not)\b.*\b(lesion|lesions|mass|abnormality|abnormal lesion|abnormal involvement)\b"
        r"|^not visible\b|^no (definite |focal )?lesion",
    ),
)

# Diffuse / infiltrative involvement: not a lesion count, shape or size of ours.
_DIFFUSE = ("diffuse_infiltrative", r"\bdiffuse(ly)?\b|\binfiltrat(ive|ion)\b.*\bprocess\b")

OUT_OF_VOCABULARY: dict[str, tuple[tuple[str, str], ...]] = {
    "modality": (
        ("dwi", r"^(dwi|diffusion( weighted)?( imaging)?( mri)?)$"),
        ("ct_contrast", r"\bct\b.*\bwith contrast\b|\bcontrast enhanced ct\b"),
        ("ct_noncontrast", r"\bct\b.*\bwithout contrast\b|\bnon contrast ct\b|\bnoncontrast ct\b"),
        ("ct", r"^(head |brain )?ct( head| brain| scan)?$"),
        ("adc", r"^(adc|apparent diffusion coefficient)( map)?$"),
        ("swi", r"^(swi|susceptibility weighted( imaging)?)$"),
        ("pet", r"^pet\b"),
    ),
    "diagnosis": (
        ("lymphoma", r"\blymphoma\b"),
        ("abscess", r"\babscess\b"),
        ("hemangiopericytoma", r"\bhemangiopericytoma\b"),
        ("hemangioblastoma", r"\bhemangioblastoma\b"),
        ("craniopharyngioma", r"\bcraniopharyngioma\b"),
        ("rathke_cleft_cyst", r"\brathke( s)? cleft cyst\b"),
        ("ganglioglioma", r"\bganglioglioma\b"),
        ("dnet", r"^(dnet|dysembryoplastic neuroepithelial tumou?r)$"),
        ("choroid_plexus_papilloma", r"\bchoroid plexus papilloma\b"),
        ("choroid_plexus_carcinoma", r"\bchoroid plexus carcinoma\b"),
        ("cavernous_malformation", r"\bcavernous malformation\b|\bcavernoma\b"),
        ("infarct", r"\binfarct(ion)?\b|\bstroke\b"),
    ),
    "size": (
        *_NO_FINDING,
        _DIFFUSE,
        # Absolute sizes: our categories are shares of the image area, not centimetres.
        ("absolute_size", r"\b\d+(\.\d+)? ?(cm|mm)\b|\bcm\b|\bmm\b"),
        ("size_or_spread", r"\bor multifocal\b"),
    ),
    "shape": (
        *_NO_FINDING,
        _DIFFUSE,
        ("linear", r"\blinear\b|\bband like\b|\btract like\b"),
        ("ring_like", r"\bring like\b"),
        ("punctate", r"\bpunctate\b"),
        ("gyriform", r"\bgyriform\b"),
        ("multiloculated", r"\bmultiloculated\b"),
        ("multinodular", r"\bmultinodular\b"),
        ("lens_shaped", r"\blens shaped\b|\bbiconvex\b"),
        ("polygonal", r"\bpolygonal\b"),
        ("plaque_like", r"\bplaque like\b"),
        ("no_definable_margin", r"^completely irregular without definable margins$"),
        ("multiple_small_lesions", r"^multiple scattered small lesions$"),
    ),
    "spread": (
        *_NO_FINDING,
        ("midline_or_csf", r"\bmidline or (with )?csf\b"),
        ("leptomeningeal_dissemination", r"\bleptomening|\bcsf\b|\bneuraxis\b|\bspinal axis\b"),
        (
            "ventricular_spread",
            r"\b(intraventricular|ventricular|ependymal) (or csf )?(spread|dissemination)\b"
            r"|^predominantly intraventricular\b",
        ),
        _DIFFUSE,
        ("infiltrative", r"\binfiltrat(ive|ion)\b"),
        ("crosses_midline", r"\bcross(es|ing)? (the )?midline\b"),
        ("midline_shift", r"\bwith midline shift\b"),
        ("mass_effect", r"\bmass effect\b"),
        ("bilateral", r"^bilateral\b"),
        (
            "local_invasion",
            r"^(?!.*\bwithout (parenchymal )?invasion\b).*\binvasion\b|\blocal extension\b",
        ),
        ("sellar_extent", r"\bsella(r)?\b|\bsuprasellar\b"),
        ("extra_axial", r"\bextra axial\b"),
        ("clustered", r"^clustered\b"),
        ("circumscribed_no_spread", r"^well circumscribed without spread$"),
    ),
    "location": (
        *_NO_FINDING,
        _DIFFUSE,
        ("posterior_fossa", r"\bposterior fossa\b|\binfratentorial\b|\bfourth ventricle\b"),
        ("posterior", r"\bposterior\b"),
        ("brainstem", r"\bbrainstem\b|\bbrain stem\b|\bpontine\b|\bpons\b"),
        ("cerebellopontine_angle", r"\bcerebellopontine\b"),
        ("cerebellum", r"\bcerebell"),
        ("sellar", r"sellar\b|\bsella\b|\bpituitary\b|\bcavernous sinus\b"),
        ("pineal", r"\bpineal\b"),
        ("ventricular", r"ventric|\bforamen of monro\b"),
        ("skull_base", r"\bskull base\b"),
        ("vertex_convexity", r"\bvertex\b|\bconvexity\b|\bparasagittal\b"),
        ("extra_axial", r"\bextra axial\b|\bdural\b|\bdura\b|\boutside the brain\b"),
        ("intra_axial", r"\bintra axial\b"),
        ("deep_grey", r"\bbasal ganglia\b|\bdeep gr[ae]y\b|\bdeep structures\b|\bdeep region\b"),
        ("supratentorial", r"\bsupratentorial\b"),
        ("lobe", r"\b(frontal|parietal|temporal|occipital|bifrontal)\b"),
        ("cortex", r"\bcortex\b|\bcortical\b"),
        ("white_matter", r"\bwhite matter\b"),
        ("left_hemisphere", r"^left (cerebral )?hemisphere$"),
        ("right_hemisphere", r"^right (cerebral )?hemisphere$"),
        ("hemisphere", r"\bhemisphere\b|\bhemispheric\b"),
        ("midline", r"\bmidline\b"),
        ("bilateral", r"\bbilateral\b"),
        ("patient_side", r"^(right|left) sided\b|^predominantly on the (right|left) side$"),
        ("edge_unframed", r"^(inferior|superior) (edge|margin)$"),
    ),
}

# Broad anatomical concepts: the phrase itself refines them ("lobe" covers "Frontal lobe" and
# "Left temporal region", which are not one concept), less words that add nothing.
_REFINED = frozenset(
    {
        "posterior",
        "brainstem",
        "cerebellum",
        "sellar",
        "ventricular",
        "skull_base",
        "vertex_convexity",
        "extra_axial",
        "intra_axial",
        "deep_grey",
        "supratentorial",
        "lobe",
        "cortex",
        "white_matter",
        "hemisphere",
        "midline",
        "bilateral",
        "patient_side",
        "edge_unframed",
        "posterior_fossa",
        "local_invasion",
        "sellar_extent",
        "mass_effect",
        "clustered",
        "pineal",
        "cerebellopontine_angle",
        "absolute_size",  # "1-3 cm" and "3-5 cm" are two sizes
    }
)
_ADDS_NOTHING = re.compile(r"\b(region|the|of|image|area|near|along|within|in)\b")
_SPACES = re.compile(r"[^a-z0-9]+")


_COMPILED: dict[str, tuple[tuple[str, re.Pattern[str]], ...]] = {
    name: tuple((concept, re.compile(pattern)) for concept, pattern in table)
    for name, table in OUT_OF_VOCABULARY.items()
}


def phrase(text: str) -> str:
    """``text`` in the form the patterns are written for: lower case, single spaces."""
    return _SPACES.sub(" ", text.lower()).strip()


@lru_cache(maxsize=8192)
def out_of_vocabulary(field: str, text: str) -> str | None:
    """The known out-of-vocabulary concept ``text`` names in ``field``, or ``None``."""
    form = phrase(text)
    for concept, pattern in _COMPILED.get(field, ()):
        if pattern.search(form):
            if concept in _REFINED:
                words = _SPACES.sub("_", _ADDS_NOTHING.sub(" ", form).strip())
                return f"{concept}:{words.strip('_')}"
            return concept
    return None
