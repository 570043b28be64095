"""The one Hugging Face lookup (atlas.models.hub.find_model) and the environment it reads through
Settings: the local cache first, a download only when asked and possible."""

from __future__ import annotations

import time

import pytest

from atlas.core.config import EmbedConfig
from atlas.core.errors import ModelError
from atlas.core.settings import HF_ENDPOINT, Settings
from atlas.models.captionmodel import text_model_identity, text_model_source
from atlas.models.hub import find_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """A Hugging Face cache holding one snapshot of ``someone/tiny`` at ``main``."""
    from huggingface_hub import constants

    repo = tmp_path / "hub" / "models--someone--tiny"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (snapshot / "modules.json").write_text("[]")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return snapshot


def test_a_cached_model_is_found_and_an_uncached_one_is_not_downloaded(hf_cache):
    assert find_model("someone/tiny") == hf_cache
    assert find_model("someone/absent") is None  # no download unless asked, whatever the settings
    assert find_model("someone/absent", Settings(hf_offline=False)) is None


def test_the_caption_model_is_looked_up_in_the_same_cache(hf_cache, tmp_path):
    config = EmbedConfig(text_model="someone/tiny")
    assert text_model_source(config, tmp_path) == str(hf_cache)
    assert text_model_identity(config, tmp_path)["hf_cache"] == COMMIT
    assert text_model_identity(EmbedConfig(text_model="someone/absent"), tmp_path)["hf_cache"] is None
    with pytest.raises(ModelError, match="not on this machine"):
        text_model_source(EmbedConfig(text_model="someone/absent"), tmp_path)


def test_a_download_is_refused_offline_and_when_the_hub_cannot_be_reached(hf_cache):
    with pytest.raises(ModelError) as error:
        find_model("someone/absent", Settings(hf_offline=True), download=True, where="--model", hint="Do X.")
    assert "HF_HUB_OFFLINE" in str(error.value) and error.value.where == "--model" and error.value.hint == "Do X."
    # HF_ENDPOINT comes through the settings: a closed local port fails at once, no download tried.
    started = time.perf_counter()
    with pytest.raises(ModelError, match="cannot be reached"):
        find_model("someone/absent", Settings(hf_endpoint="https://127.0.0.1:1"), download=True)
    assert time.perf_counter() - started < 10
    assert find_model("someone/tiny", Settings(hf_offline=True), download=True) == hf_cache  # cached: no download


def test_the_probe_asks_the_endpoints_own_port():
    """A mirror on a port of its own (HF_ENDPOINT=http://host:8080) is reachable; the probe once
    asked port 443 whatever the endpoint said."""
    import socket

    from atlas.models.hub import reachable

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        assert reachable(f"http://127.0.0.1:{port}", 5)
    assert not reachable(f"http://127.0.0.1:{port}", 2)


def test_settings_read_the_hugging_face_environment():
    settings = Settings.from_env({"HF_HUB_OFFLINE": "1", "HF_ENDPOINT": "https://mirror.example/", "HF_TOKEN": "t"})
    assert settings.hf_offline and settings.hf_endpoint == "https://mirror.example" and settings.hf_token == "t"
    plain = Settings.from_env({"HF_HUB_OFFLINE": "0"})
    assert not plain.hf_offline and plain.hf_endpoint == HF_ENDPOINT and plain.hf_token is None
