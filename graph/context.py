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
from typing import TYPE_CHECKING, Any, Literal

from neuroonco.agents.prompts import PROMPT_VERSION
from neuroonco.agents.providers.registry import canonical_spec, parse_spec
from neuroonco.errors import ConfigError

if TYPE_CHECKING:
    from neuroonco.graph.calls import ModelCaller
    from neuroonco.graph.writer import AnnotationWriter

FusionRule = Literal["unanimous", "majority", "seed_rules"]
RULES = ("unanimous", "majority", "seed_rules")
# Per-model options (README, "Model options") and the type each takes.
MODEL_OPTIONS: dict[str, tuple[type, ...]] = {
    "timeout_s": (int, float),
    "max_retries": (int,),
    "concurrency": (int,),
    "mode": (str,),
    "multi_image": (bool,),
    "max_tokens": (int,),
    "temperature": (int, float),
    "send_temperature": (bool,),
    "base_url": (str,),
    "host": (str,),
    "api_key_env": (str,),
}
# The options that change what a model answers, hence the config hash.
ANSWER_OPTIONS = ("mode", "multi_image", "max_tokens", "temperature", "send_temperature")


def check_model_options(spec: str, options: object) -> dict[str, Any]:
    """A spec's options, checked: known keys of the right type (ConfigError otherwise)."""
    parse_spec(spec)
    if not isinstance(options, dict):
        raise ConfigError(f"models.{spec!r} must be a table of options, got {options!r}")
    for key, value in options.items():
        if key not in MODEL_OPTIONS:
            raise ConfigError(
                f"unknown option {key!r} for {spec}; allowed: {', '.join(MODEL_OPTIONS)}"
            )
        types = MODEL_OPTIONS[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            kind = " or ".join(t.__name__ for t in types)
            raise ConfigError(f"option {key} of {spec} must be {kind}, got {value!r}")
    for key in ("timeout_s", "concurrency", "max_tokens"):
        if key in options and options[key] <= 0:
            raise ConfigError(f"option {key} of {spec} must be > 0, got {options[key]}")
    return dict(options)


def check_price(spec: str, pair: object) -> list[float]:
    """``[IN, OUT]`` USD per million tokens, checked."""
    parse_spec(spec)
    ok = isinstance(pair, list | tuple) and len(pair) == 2
    if not ok or not all(isinstance(x, int | float) and x >= 0 for x in pair):
        raise ConfigError(
            f"price of {spec} must be [IN, OUT] in USD per million tokens, got {pair!r}"
        )
    return [float(pair[0]), float(pair[1])]


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
    models: dict[str, dict[str, Any]] = field(
        default_factory=dict,
        metadata={"help": "Per-model provider options, keyed by spec (README: Model options)."},
    )
    prices: dict[str, list[float]] = field(
        default_factory=dict,
        metadata={"help": "USD per million input/output tokens, keyed by spec: [IN, OUT]."},
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
        self.models = {
            canonical_spec(spec): check_model_options(spec, opts)
            for spec, opts in (self.models or {}).items()
        }
        self.prices = {
            canonical_spec(spec): check_price(spec, pair) for spec, pair in self.prices.items()
        }

    def as_dict(self) -> dict:
        return asdict(self)

    def specs(self) -> list[str]:
        """Every model spec of the run, each once, in panel order."""
        panel = [*self.describers, self.diagnostician, self.critic, self.arbiter]
        return list(dict.fromkeys(panel))

    def model_options(self, spec: str) -> dict[str, Any]:
        return self.models.get(spec) or self.models.get(canonical_spec(spec)) or {}

    def request_params(self, spec: str) -> tuple[float | None, int]:
        """(temperature, max_tokens) of ``spec``'s requests; temperature None: not sent."""
        opts = self.model_options(spec)
        temperature = opts.get("temperature", self.temperature)
        if opts.get("send_temperature") is False:
            temperature = None
        return temperature, int(opts.get("max_tokens", self.max_tokens))

    def config_hash(self) -> str:
        """Stable hash of everything that changes an annotation, prompt version included.

        Prices and transport settings (timeouts, concurrency, endpoints) change no answer."""
        payload = {**self.as_dict(), "prompt_version": PROMPT_VERSION}
        payload.pop("prices")
        payload["models"] = {
            spec: {k: v for k, v in opts.items() if k in ANSWER_OPTIONS}
            for spec, opts in sorted(self.models.items())
        }
        payload["models"] = {k: v for k, v in payload["models"].items() if v}
        if not payload["models"]:
            payload.pop("models")  # configs without options keep their earlier hash
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
