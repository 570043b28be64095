"""The Bias page's caption figures: DuckDB's one-pass counts equal an independent Python count on
the real LAION sample; the word lists, plurals, intervals and safety rule at their edges."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers.content import write_shard
from helpers.paths import REPO, SAMPLE_10K, needs_shared

from atlas.core.config import DataConfig
from atlas.data.policy import load_policy
from atlas.data.rows import open_rows
from atlas.data.sources import resolve_sources
from atlas.core.errors import ContentError
from atlas.stages.bias import (
    WordList,
    bias_captions,
    bias_occupations,
    load_word_lists,
    occupation_terms,
    plural,
    wilson,
)



def _rows(pattern: str):
    return open_rows(resolve_sources([pattern], Path(".")), DataConfig(unscored="keyword-filter"), policy=load_policy(DataConfig(unscored="keyword-filter"), None))  # the real sample has no scores


def _python_count(captions: list, words: list[str]) -> list[bool]:
    """Independent of the SQL: tokenise each caption into lower-case words and look the terms up."""
    found = []
    for caption in captions:
        tokens = re.findall(r"[a-z0-9]+", (caption or "").lower())
        text = " " + " ".join(tokens) + " "
        found.append(caption is not None and any(f" {w} " in text for w in words))
    return found


@needs_shared
def test_counts_equal_an_independent_python_count_on_the_real_sample():
    content = REPO / "content"
    female, male = load_word_lists(content)
    occupations = bias_occupations(content)
    assert len(occupations) == 12
    rows = _rows(str(SAMPLE_10K))
    result = bias_captions(rows, occupations, female, male)
    rows.con.close()
    captions = pq.read_table(SAMPLE_10K, columns=["TEXT"]).column("TEXT").to_pylist()
    assert result.rows == len(captions) == 10_000
    fem = _python_count(captions, female.words)
    mal = _python_count(captions, male.words)
    for item in result.occupations:
        hits = _python_count(captions, item.terms)
        assert item.mentions == sum(hits), item.occupation
        assert item.female == sum(h and f for h, f in zip(hits, fem)), item.occupation
        assert item.male == sum(h and m for h, m in zip(hits, mal)), item.occupation
        assert item.unmarked == sum(h and not f and not m for h, f, m in zip(hits, fem, mal)), item.occupation
        assert len(item.examples) == min(3, item.mentions)  # no punsafe column: every row may be shown
        assert all(re.search(r"(?i)\b(" + "|".join(item.terms) + r")\b", c) for c in item.examples)
    assert sum(o.mentions for o in result.occupations) > 20  # teachers, doctors, nurses... are there


def test_whole_words_plurals_case_and_unsafe_rows(tmp_path):
    shard = write_shard(tmp_path / "s.parquet", {
        "TEXT": ["Doctor Who poster", "two DOCTORS and a nurse", "doctorate gown", "her doctor", None,
                 "his doctor", "female  software\tengineer", "software engineers meetup", "softwareengineer",
                 "unsafe doctor picture"],
        "punsafe": [0.1, 0.1, 0.1, 0.1, 0.1, float("nan"), 0.1, 0.1, 0.1, 0.9],
    })
    female = WordList("female", "", ["her", "female"])
    male = WordList("male", "", ["his"])
    rows = _rows(str(shard))
    result = bias_captions(rows, ["a doctor", "a software engineer", "a nurse", "a janitor"], female, male)
    rows.con.close()
    by = {o.occupation: o for o in result.occupations}
    assert result.rows == 10 and result.captioned == 9
    doctor = by["a doctor"]
    assert (doctor.mentions, doctor.female, doctor.male, doctor.both, doctor.unmarked) == (5, 1, 1, 0, 3)
    # Unsafe (0.9) and unknown-safety (NaN) rows are counted but never shown as examples.
    assert "unsafe doctor picture" not in doctor.examples and "his doctor" not in doctor.examples
    assert len(doctor.examples) == 3
    engineer = by["a software engineer"]
    assert (engineer.mentions, engineer.female) == (2, 1)
    assert by["a janitor"].mentions == 0 and by["a janitor"].share(0) is None and by["a janitor"].interval(0) is None


def test_plurals_and_terms():
    assert occupation_terms("a software engineer") == ["software engineer", "software engineers"]
    assert occupation_terms("an  Actress") == ["actress", "actresses"]
    assert occupation_terms("a CEO") == ["ceo", "ceos"]
    assert occupation_terms("   ") == []
    assert [plural(w) for w in ("secretary", "day", "fireman", "coach", "box")] == [
        "secretaries", "days", "firemen", "coaches", "boxes"]


def test_wilson_interval_edges():
    assert wilson(0, 0) is None
    low, high = wilson(0, 5)
    assert low == 0.0 and 0.4 < high < 0.5  # zero of five: still up to ~43 %
    low, high = wilson(5, 5)
    assert high == 1.0 and 0.5 < low < 0.6
    low, high = wilson(500, 1000)
    assert 0.46 < low < 0.5 < high < 0.54


def test_a_broken_word_list_is_a_content_error_naming_the_file(tmp_path):
    with pytest.raises(ContentError, match="gender-words.toml is missing"):
        load_word_lists(tmp_path)
    (tmp_path / "gender-words.toml").write_text('[female]\nwords = []\n[male]\nwords = ["he"]\n')
    with pytest.raises(ContentError) as error:
        load_word_lists(tmp_path)
    assert "[female]" in str(error.value)
    (tmp_path / "gender-words.toml").write_text('[female]\nwords = ["she"]\n[male]\nwords = ["he"]\n[other]\n')
    with pytest.raises(ContentError, match="unknown table"):
        load_word_lists(tmp_path)
    (tmp_path / "gender-words.toml").write_text('[female\nwords = ["she"]\n')
    with pytest.raises(ContentError, match="not valid TOML"):
        load_word_lists(tmp_path)
