"""Run settings of the annotation graph (`AnnotateConfig`) and the runtime context nodes receive.

Nodes never read environment variables or open files on their own: the runner builds one
:class:`GraphContext` per run (providers, model caller, store reader) and LangGraph hands it to
every node as ``runtime.context``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from neuroonco.agents.prompts import PROMPT_VERSION
from neuroonco.errors import ConfigError

if TYPE_CHECKING:
    from neuroonco.graph.calls import ModelCaller
    from neuroonco.graph.writer import AnnotationWriter

FusionRule = Literal["unanimous", "majority", "seed_rules"]
RULES = ("unanimous", "majority", "seed_rules")


@dataclass
class AnnotateConfig:
    """What decides an annotation. Its hash keys resume: same config, same slices skipped."""

    describers: list[str] = field(
        default_factory=lambda: ["builtin"],
        metadata={"help": "Describer panel: model specs run in parallel on every slice."},
    )
    diagnostician: str = field(default="builtin", metadata={"help": "Diagnosis model spec."})
    critic: str = field(default="builtin", metadata={"help": "Critic model spec."})
    arbiter: str = field(default="builtin", metadata={"help": "Arbiter model spec."})
    rule: FusionRule = field(default="majority", metadata={"help": "Vote fusion rule."})
    max_rounds: int = field(default=2, metadata={"help": "Describe/critique rounds at most."})
    review_threshold: float = field(
        default=0.75, metadata={"help": "Overall agreement below this gives needs_review."}
    )
    temperature: float = field(default=0.0, metadata={"help": "Sampling temperature."})
    max_tokens: int = field(default=1024, metadata={"help": "Output token limit per call."})
    group_images: bool = field(
        default=True,
        metadata={"help": "Send the other sequences of the slice's group to multi-image models."},
    )

    def __post_init__(self) -> None:
        if not self.describers:
            raise ConfigError("at least one describer is needed: pass --describers builtin")
        if self.rule not in RULES:
            raise ConfigError(f"unknown fusion rule {self.rule!r}; use one of: {', '.join(RULES)}")
        if self.max_rounds < 1:
            raise ConfigError(f"max_rounds must be >= 1, got {self.max_rounds}")
        if not 0.0 <= self.review_threshold <= 1.0:
            raise ConfigError("review_threshold must be between 0 and 1")

    def as_dict(self) -> dict:
        return asdict(self)

    def config_hash(self) -> str:
        """Stable hash of everything that changes an annotation, prompt version included."""
        payload = {**self.as_dict(), "prompt_version": PROMPT_VERSION}
        text = json.dumps(payload, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @classmethod
    def from_file(cls, path: Path) -> AnnotateConfig:
        """Read a JSON or TOML config file whose keys are this class's fields."""
        try:
            text = path.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config file {path}: {exc}") from exc
        try:
            if path.suffix == ".toml":
                import tomllib

                data = tomllib.loads(text)
            else:
                data = json.loads(text)
        except ValueError as exc:
            kind = path.suffix[1:] or "JSON"
            raise ConfigError(f"config file {path} is not valid {kind}: {exc}") from exc
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            allowed = ", ".join(cls.__dataclass_fields__)
            raise ConfigError(f"unknown keys in {path}: {sorted(unknown)}; allowed: {allowed}")
        return cls(**data)


@dataclass
class GraphContext:
    """What every node gets as ``runtime.context`` for one run."""

    config: AnnotateConfig
    caller: ModelCaller
    base_dir: Path
    """Folder that stored image paths are relative to (the database's folder)."""
    run_id: str
    config_hash: str
    writer: AnnotationWriter
