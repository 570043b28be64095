"""atlas.toml: typed, validated, every problem named by its key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from atlas.config import AtlasConfig, load_config
from atlas.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _load(tmp_path, text):
    (tmp_path / "atlas.toml").write_text(text)
    return load_config(tmp_path)


def test_missing_file_gives_defaults(tmp_path):
    config = load_config(tmp_path)
    assert config.sample.size == 20_000 and config.data.unsafe_threshold == 0.5 and config.data.sources == []


def test_unknown_key_is_named(tmp_path):
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, "[sample]\nsize = 10\nsede = 3\n")
    assert "[sample] sede: unknown key" in str(error.value)


def test_unknown_section_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"\[smaple\]: unknown key"):
        _load(tmp_path, "[smaple]\nsize = 10\n")


def test_wrong_types_are_all_reported_at_once(tmp_path):
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, '[sample]\nsize = "lots"\n[data]\nunsafe_threshold = 2\n')
    text = str(error.value)
    assert "2 problem(s)" in text
    assert "[sample] size" in text and "'lots'" in text
    assert "[data] unsafe_threshold" in text


def test_bad_toml_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="atlas.toml is not valid TOML"):
        _load(tmp_path, "[sample\nsize = 1\n")


def test_unknown_canonical_column(tmp_path):
    with pytest.raises(ConfigError, match="unknown canonical column"):
        _load(tmp_path, '[data.columns]\ncaptoin = "alt"\n')


def test_base_url_from_environment_wins(tmp_path, monkeypatch):
    config = _load(tmp_path, '[site]\nbase_url = "https://a.github.io/x/"\n')
    assert config.base_url() == "https://a.github.io/x/"
    from atlas.settings import Settings

    monkeypatch.setenv("ATLAS_BASE_URL", "https://b.github.io/y/")
    assert config.with_base_url(Settings.from_env().base_url).base_url() == "https://b.github.io/y/"
    assert config.with_base_url(Settings.from_env({}).base_url).base_url() == "https://a.github.io/x/"


def test_missing_content_folder(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope")


def test_repo_content_config_is_valid():
    load_config(REPO / "content")


def test_every_config_key_is_documented():
    """Like Datasette's test_settings_are_documented: each key appears in the README."""
    readme = (REPO / "README.md").read_text()
    missing = []
    for section, field in AtlasConfig.model_fields.items():
        for key in field.annotation.model_fields:
            if not re.search(rf"`{key}`", readme):
                missing.append(f"[{section}] {key}")
    assert not missing, f"README.md does not document: {', '.join(missing)}"
