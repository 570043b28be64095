"""atlas.toml: typed, validated, every problem named by its key."""

from __future__ import annotations

import re
import tomllib

import pytest

from atlas.core.config import AtlasConfig, load_config
from atlas.core.errors import ConfigError
from helpers.paths import REPO



def _load(tmp_path, text):
    (tmp_path / "atlas.toml").write_text(text)
    return load_config(tmp_path)


def test_missing_file_gives_defaults(tmp_path):
    config = load_config(tmp_path)
    assert config.sample.size == 20_000 and config.data.unsafe_threshold == 0.5 and config.data.sources == []


#: pydantic's own wording, which must never reach a user.
PYDANTIC_WORDS = ("Input should be", "validation error", "For further information visit", "type=", "pydantic")


def _problem(tmp_path, text) -> str:
    with pytest.raises(ConfigError) as error:
        _load(tmp_path, text)
    message = str(error.value)
    for words in PYDANTIC_WORDS:
        assert words not in message, message
    return message


def _sentences(message: str) -> int:
    """How many sentences a message has: ends of sentences followed by a space or the end."""
    return len(re.findall(r"[.?](?:\s|$)", message.replace("e.g.", "eg")))


def test_unknown_table_suggests_the_nearest(tmp_path):
    message = _problem(tmp_path, "[sampel]\nsize = 10\n")
    assert message == "atlas.toml: unknown table [sampel] — did you mean [sample]?".replace("atlas.toml", str(tmp_path / "atlas.toml"))
    assert "did you mean [data.columns]?" in _problem(tmp_path, '[data.colums]\ncaption = "alt"\n')


def test_unknown_key_suggests_the_nearest(tmp_path):
    message = _problem(tmp_path, "[sample]\nsize = 10\nsede = 3\n")
    assert "unknown key sede in [sample] — did you mean seed?" in message and _sentences(message) == 1
    # A key under the wrong table, or above every table, points to the table that has it.
    assert "did you mean unsafe_threshold in [data]?" in _problem(tmp_path, "[sample]\nunsafe_threshold = 0.3\n")
    assert "unknown key title at the top of the file — did you mean title in [site]?" in _problem(tmp_path, 'title = "x"\n')


def test_unknown_key_without_a_near_one_lists_the_keys(tmp_path):
    message = _problem(tmp_path, "[sample]\nzzz = 3\n")
    assert "unknown key zzz in [sample]; the keys there are size and seed." in message
    assert "the tables are [site], [data]" in _problem(tmp_path, "[qqq]\na = 1\n")


def test_a_quoted_number_is_explained_in_our_words(tmp_path):
    message = _problem(tmp_path, '[sample]\nsize = "20k"\n')
    assert '[sample] size = "20k": expected a whole number of rows' in message
    assert "without quotes, e.g. size = 20000." in message and _sentences(message) == 1


@pytest.mark.parametrize("line, words", [
    ('[sample]\nsize = 2.5', "[sample] size = 2.5: expected a whole number of rows"),
    ("[sample]\nsize = 0", "[sample] size = 0 is out of range: expected a whole number of rows from 1 to 5000000, e.g. size = 20000."),
    ("[data]\nunsafe_threshold = 2", "[data] unsafe_threshold = 2 is out of range: expected a number from 0 to 1, e.g. unsafe_threshold = 0.5."),
    ('[data]\nunsafe_threshold = "half"', '[data] unsafe_threshold = "half": expected a number from 0 to 1, without quotes'),
    ("[data]\nunsafe_threshold = nan", "[data] unsafe_threshold = nan: expected a finite number, not nan or inf"),
    ("[project]\nmin_dist = inf", "[project] min_dist = inf: expected a finite number, not nan or inf"),
    ("[project]\ndeterministic = 2", "[project] deterministic = 2: expected true or false, without quotes, e.g. deterministic = true."),
    ('[project]\ndeterministic = "maybe"', "expected true or false, without quotes"),
    ("[site]\ntitle = 3", '[site] title = 3: expected text in quotes, e.g. title = "An atlas of LAION".'),
    ('[site]\ntitle = ["a", "b"]', '[site] title = ["a", "b"]: expected one text value in quotes, not a list'),
    ('[data]\nsources = "shards/a.parquet"', '[data] sources = "shards/a.parquet": expected a list in square brackets, e.g. sources = ["shards/a.parquet"].'),
    ("[data]\nsources = [1]", '[data] sources item 1 = 1: expected text in quotes, e.g. sources = ["shards/*.parquet"].'),
    ('[data]\nunscored = "hid"', '[data] unscored = "hid": expected "hide" or "keyword-filter" — did you mean "hide"?'),
    ('[embed]\nmethod = "CLIP"', 'expected one of "auto", "clip", "text", "tfidf" or "precomputed" — did you mean "clip"?'),
    ('[generate]\nsteps = "many"', '[generate] steps = "many": expected a whole number of steps from 1 to 500, without quotes, e.g. steps = 30.'),
    ('[data]\ncolumns = "alt"', '[data] columns = "alt": expected a table; write [data.columns] on a line of its own'),
    ("sample = 3", "sample = 3: expected a table; write [sample] on a line of its own"),
    ("[data.columns]\ncaption = 3", '[data.columns] caption = 3: expected text in quotes, e.g. caption = "TEXT".'),
    ("[sample]\nseed = 2020-01-01", "[sample] seed = 2020-01-01: expected a whole number, e.g. seed = 42."),
    ('[site]\nbase_url = "javascript:alert(1)"', '[site] base_url = "javascript:alert(1)": must be an absolute http(s) URL'),
])
def test_each_wrong_value_is_one_sentence_in_our_words(tmp_path, line, words):
    message = _problem(tmp_path, line + "\n")
    assert words in message, message
    assert _sentences(message) == 1, message


def test_wrong_types_are_all_reported_at_once(tmp_path):
    message = _problem(tmp_path, '[sample]\nsize = "lots"\n[data]\nunsafe_threshold = 2\n[sampel]\nseed = 1\n')
    assert ": 3 problems: " in message
    assert '[sample] size = "lots": expected' in message and "[data] unsafe_threshold = 2 is out of range" in message
    assert "did you mean [sample]?" in message
    assert _sentences(message) == 3, message  # one sentence each, not run together


def test_config_error_through_the_command_line(tmp_path):
    """What a user sees: one paragraph on stderr, exit status 2, no traceback, the suggestion."""
    import os
    import subprocess
    import sys

    (tmp_path / "atlas.toml").write_text('[sampel]\nsize = 10\n')
    env = dict(os.environ, CI="true", HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-m", "atlas", "build", "--content", str(tmp_path), "--out", str(tmp_path / "s")],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "unknown table [sampel] — did you mean [sample]?" in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    for words in PYDANTIC_WORDS:
        assert words not in result.stderr


def test_bad_toml_names_the_file(tmp_path):
    with pytest.raises(ConfigError, match="atlas.toml: not valid TOML"):
        _load(tmp_path, "[sample\nsize = 1\n")


def test_unknown_canonical_column_suggests_the_nearest(tmp_path):
    message = _problem(tmp_path, '[data.columns]\ncaptoin = "alt"\nzzz = "b"\n')
    assert "unknown column captoin in [data.columns] — did you mean caption?" in message
    assert "unknown column zzz in [data.columns]; the columns atlas reads are url, caption" in message
    assert _sentences(message) == 2, message


def test_base_url_from_environment_wins(tmp_path, monkeypatch):
    config = _load(tmp_path, '[site]\nbase_url = "https://a.github.io/x/"\n')
    assert config.base_url() == "https://a.github.io/x/"
    from atlas.core.settings import Settings

    monkeypatch.setenv("ATLAS_BASE_URL", "https://b.github.io/y/")
    assert config.with_base_url(Settings.from_env().base_url).base_url() == "https://b.github.io/y/"
    assert config.with_base_url(Settings.from_env({}).base_url).base_url() == "https://a.github.io/x/"


def test_missing_content_folder(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope")


def _readme_defaults() -> dict[tuple[str, str], object]:
    """The README's configuration table: (table, key) -> the default it documents, where that
    cell is a TOML value (not "…" or "model default")."""
    defaults = {}
    for table, key, cell in re.findall(r"^\| `\[(\w+)\]` `(\w+)` \| ([^|]+) \|", (REPO / "README.md").read_text(), re.M):
        try:
            defaults[table, key] = tomllib.loads(f"v = {cell.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            pass
    return defaults


def test_repo_content_config_is_valid():
    """content/atlas.toml is what a fork starts from and what the published site is built with: it
    must be there (a missing file silently means defaults), parse, and hold the values the README
    promises: the documented defaults, except artists, which the default content sets."""
    path = REPO / "content" / "atlas.toml"
    assert path.is_file(), path
    written = tomllib.loads(path.read_text())
    assert set(written) == {"site", "data", "sample", "embed", "project"}
    config = load_config(REPO / "content")
    for table, values in written.items():
        for key, value in values.items():
            assert getattr(getattr(config, table), key) == value, (table, key)
    defaults = _readme_defaults()
    differs = {("data", "artists")}  # README: `artists.txt` in the default content
    documented = [(table, key) for table, values in written.items() for key in values if (table, key) in defaults]
    assert len(documented) >= 10, documented
    for table, key in documented:
        if (table, key) not in differs:
            assert written[table][key] == defaults[table, key], (table, key, defaults[table, key])
    assert config.site.title == "An atlas of LAION" and config.data.sources == []  # the demo build
    assert config.data.artists == "artists.txt" and (REPO / "content" / config.data.artists).is_file()
    assert (config.sample.size, config.sample.seed) == (20_000, 42) and config.data.unsafe_threshold == 0.5
    assert (config.embed.method, config.embed.model, config.embed.pretrained) == ("auto", "ViT-B-32", "")


def test_every_config_key_is_documented():
    """Like Datasette's test_settings_are_documented: each key appears in the README."""
    readme = (REPO / "README.md").read_text()
    missing = []
    for section, field in AtlasConfig.model_fields.items():
        for key in field.annotation.model_fields:
            if not re.search(rf"`{key}`", readme):
                missing.append(f"[{section}] {key}")
    assert not missing, f"README.md does not document: {', '.join(missing)}"


def test_a_hint_is_its_own_sentence():
    """``where: message`` and the hint never run together ("... (looked for x) Check the path")."""
    from atlas.core.errors import DataError

    assert str(DataError("no shards match 'x'", hint="Check the path.")) == "no shards match 'x'. Check the path."
    assert str(DataError("is it there?", where="a.toml", hint="Look.")) == "a.toml: is it there? Look."
