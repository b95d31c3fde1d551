"""Specs, provider construction, environment variables and missing keys."""

from __future__ import annotations

import pytest

from neuroonco.agents.providers.anthropic_provider import AnthropicProvider
from neuroonco.agents.providers.base import ProviderOptions
from neuroonco.agents.providers.ollama_provider import OllamaProvider
from neuroonco.agents.providers.openai_provider import OpenAIProvider
from neuroonco.agents.providers.registry import canonical_spec, make_provider, parse_spec
from neuroonco.errors import ConfigError
from tests.agents.providers.helpers import GOOD, ask, fast_options
from tests.support.loopback import LoopbackServer


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("openai:gpt-4o-mini", ("openai", "gpt-4o-mini")),
        ("ollama:qwen2.5vl:7b", ("ollama", "qwen2.5vl:7b")),
        ("anthropic:claude-sonnet-4-5", ("anthropic", "claude-sonnet-4-5")),
        ("builtin", ("builtin", "")),
        (" OpenAI:gpt-4o ", ("openai", "gpt-4o")),
    ],
)
def test_parse_spec(spec, parsed):
    assert parse_spec(spec) == parsed


def test_unknown_provider_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="use one of builtin, openai, anthropic, ollama"):
        parse_spec("gemini:pro")


@pytest.mark.parametrize("spec", ["openai", "openai:", "ollama: "])
def test_spec_without_model_is_rejected(spec):
    with pytest.raises(ConfigError, match="names no model"):
        parse_spec(spec)


def test_canonical_spec():
    assert canonical_spec(" OpenAI:gpt-4o") == "openai:gpt-4o"
    assert canonical_spec("builtin") == "builtin"


def test_make_provider_builds_each_kind():
    options = ProviderOptions(max_concurrency=3)
    openai = make_provider("openai:gpt-4o-mini", options, api_key="k")
    anthropic = make_provider("anthropic:claude-haiku-4-5", api_key="k")
    ollama = make_provider("ollama:qwen2.5vl:7b")
    assert isinstance(openai, OpenAIProvider) and openai.spec == "openai:gpt-4o-mini"
    assert openai.options is options
    assert isinstance(anthropic, AnthropicProvider) and anthropic.spec.startswith("anthropic:")
    assert isinstance(ollama, OllamaProvider) and ollama.model == "qwen2.5vl:7b"


def test_make_provider_builtin():
    pytest.importorskip("neuroonco.agents.providers.builtin")
    assert make_provider("builtin").spec == "builtin"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("openai:gpt-4o-mini", "no API key: set OPENAI_API_KEY or pass --describers builtin"),
        (
            "anthropic:claude-sonnet-4-5",
            "no API key: set ANTHROPIC_API_KEY or pass --describers builtin",
        ),
    ],
)
def test_missing_api_key_is_a_config_error(spec, message):
    with pytest.raises(ConfigError) as info:
        make_provider(spec)
    assert str(info.value) == message


def test_unknown_openai_mode():
    with pytest.raises(ConfigError, match="use one of tools, json_schema, json, md_json"):
        OpenAIProvider("m", api_key="k", mode="functions")


def test_openai_environment_is_honoured(server: LoopbackServer, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
    server.enqueue(GOOD)
    provider = make_provider("openai:gpt-4o-mini", fast_options())
    assert ask(provider).ok
    assert server.chat_requests()[0].headers["authorization"] == "Bearer sk-from-env"


def test_anthropic_environment_is_honoured(server: LoopbackServer, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-from-env")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", server.anthropic_base_url)
    server.enqueue(GOOD)
    assert ask(make_provider("anthropic:claude-haiku-4-5", fast_options())).ok
    assert "sk-ant-from-env" in server.chat_requests()[0].headers["authorization"]


def test_overrides_beat_the_environment(server: LoopbackServer, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    server.enqueue(GOOD)
    provider = make_provider(
        "openai:m", fast_options(), api_key="sk-arg", base_url=server.openai_base_url
    )
    assert ask(provider).ok
    assert server.chat_requests()[0].headers["authorization"] == "Bearer sk-arg"


def test_compatible_server_needs_no_key(server: LoopbackServer):
    server.enqueue(GOOD)
    provider = make_provider("openai:qwen2.5-vl", fast_options(), base_url=server.openai_base_url)
    assert ask(provider).ok
    assert repr(provider) == (
        f"OpenAIProvider(spec='openai:qwen2.5-vl', base_url='{server.openai_base_url}', "
        "mode='tools')"
    )


def test_cache_identity_tells_endpoints_and_modes_apart(monkeypatch) -> None:
    from neuroonco.agents.providers.base import ProviderOptions
    from neuroonco.agents.providers.registry import provider_for
    from neuroonco.agents.requests import build_request

    monkeypatch.setenv("OPENAI_API_KEY", "k")
    base = ProviderOptions()
    a = provider_for("openai:m", base, {"base_url": "http://127.0.0.1:1/v1"})
    b = provider_for("openai:m", base, {"base_url": "http://127.0.0.1:2/v1"})
    c = provider_for("openai:m", base, {"base_url": "http://127.0.0.1:1/v1", "mode": "json"})
    request = build_request("critic", {"findings": {}})
    keys = {request.cache_key(p.cache_identity) for p in (a, b, c)}
    assert len(keys) == 3


def test_per_model_options_are_checked_and_applied(monkeypatch) -> None:
    from neuroonco.agents.providers.base import ProviderOptions
    from neuroonco.agents.providers.registry import provider_for
    from neuroonco.graph.context import AnnotateConfig

    with pytest.raises(ConfigError, match="unknown option 'colour'"):
        AnnotateConfig(models={"openai:m": {"colour": 1}})
    with pytest.raises(ConfigError, match="timeout_s of openai:m must be int or float"):
        AnnotateConfig(models={"openai:m": {"timeout_s": "slow"}})
    with pytest.raises(ConfigError, match="mode does not apply to ollama"):
        provider_for("ollama:x", ProviderOptions(), {"mode": "json"})
    monkeypatch.delenv("MY_KEY", raising=False)
    with pytest.raises(ConfigError, match="export MY_KEY"):
        provider_for("openai:m", ProviderOptions(), {"api_key_env": "MY_KEY"})
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    p = provider_for(
        "openai:o3-mini",
        ProviderOptions(),
        {"timeout_s": 7, "concurrency": 3, "multi_image": False},
    )
    assert p.options.timeout_s == 7 and p.options.max_concurrency == 3
    assert p.supports_multiple_images is False and p.send_temperature is False  # a reasoning model
    config = AnnotateConfig(models={"openai:m": {"send_temperature": False, "max_tokens": 99}})
    assert config.request_params("openai:m") == (None, 99)
    assert config.config_hash() != AnnotateConfig().config_hash()
    timeouts = AnnotateConfig(models={"openai:m": {"timeout_s": 9}}, prices={"openai:m": [1, 2]})
    assert timeouts.config_hash() == AnnotateConfig().config_hash()  # no answer changes
