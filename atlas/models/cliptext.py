"""CLIP's text tower for the reader's browser: the ONNX graph and the tokenizer's files.

The ``textmodel`` stage (:mod:`atlas.stages.textmodel`) ships these when the map was embedded
with CLIP, so a reader's words land in the space of the sample's image (or caption) embeddings.
The page tokenises with ``themes/default/static/js/text/clip-bpe.js``, our JavaScript copy of
open_clip's ``SimpleTokenizer``; what it needs comes from the Python libraries the build ran:

``clip-bpe.txt``
    The BPE merges in rank order, one ``first second`` a line (the tokenizer's ``bpe_ranks``:
    open_clip's ``bpe_simple_vocab_16e6.txt.gz`` without its header, 48,894 lines). The
    vocabulary follows from them as in open_clip: the 256 byte characters, the same with
    ``</w>``, one token per merge, then the special tokens.
``clip-clean.json``
    The tables of open_clip's ``basic_clean``: Python's HTML5 entities (``html.entities.html5``)
    and its rules for invalid numeric references, ftfy's upper-case entities, C1 controls (as
    sloppy Windows-1252), Latin ligatures, full-width forms, curly quotes and control characters.

Only open_clip's ``SimpleTokenizer`` with its default cleaning (``clean="lower"``, no
reduction) is supported; a model with another tokenizer (SigLIP's, a Hugging Face one) gets a
ValueError, which the stage turns into an unavailable manifest and a warning.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

BPE = "clip-bpe.txt"
CLEAN = "clip-clean.json"
OPSET = 17


def _tokenizer_module():
    from atlas.models._torch_compat import import_open_clip

    import_open_clip()
    import open_clip.tokenizer as module

    return module


def tokenizer_settings(tokenizer) -> dict:
    """What the page's tokenizer needs (text-model.json's ``tokenizer``); a ValueError for a
    tokenizer the page does not implement."""
    module = _tokenizer_module()
    if not isinstance(tokenizer, module.SimpleTokenizer):
        raise ValueError(f"the CLIP tokenizer {type(tokenizer).__name__} is not open_clip's SimpleTokenizer (BPE)")
    if tokenizer.clean_fn is not module._clean_lower or tokenizer.reduction_fn is not None:
        raise ValueError("the CLIP tokenizer cleans or reduces texts other than open_clip's default way")
    specials = [tokenizer.decoder[i] for i in tokenizer.all_special_ids]
    if _vocabulary(tokenizer, merges(tokenizer), specials) != tokenizer.encoder:
        raise ValueError("the CLIP tokenizer's vocabulary does not follow from its merges")
    return {
        "kind": "clip-bpe",
        "context_length": int(tokenizer.context_length),
        "specials": specials,
        "sot": int(tokenizer.sot_token_id),
        "eot": int(tokenizer.eot_token_id),
        "pad": 0,
        "clean": "lower",
        "vocab_size": len(tokenizer.encoder),
    }


def merges(tokenizer) -> list[str]:
    """The tokenizer's merges in rank order, ``first second`` each."""
    ranked = sorted(tokenizer.bpe_ranks.items(), key=lambda item: item[1])
    lines = [f"{first} {second}" for (first, second), _ in ranked]
    if any(len(line.split(" ")) != 2 or "\n" in line for line in lines):
        raise ValueError("a BPE merge holds a space or a line break")
    return lines


def _vocabulary(tokenizer, lines: list[str], specials: list[str]) -> dict[str, int]:
    """The vocabulary the page derives (clip-bpe.js): bytes, bytes + '</w>', merges, specials."""
    chars = list(_tokenizer_module().bytes_to_unicode().values())
    vocab = chars + [c + "</w>" for c in chars] + [line.replace(" ", "") for line in lines] + specials
    return dict(zip(vocab, range(len(vocab))))


def clean_tables() -> dict:
    """clip-clean.json: the tables of basic_clean as this Python's html and ftfy hold them."""
    import html
    import html.entities

    import ftfy  # noqa: F401 (registers the sloppy codecs)
    from ftfy import chardata

    html5 = dict(html.entities.html5)
    upper = {entity: char for entity, char in chardata.HTML_ENTITIES.items() if entity[1:] not in html5}
    if any(html5[entity[1:]] != char for entity, char in chardata.HTML_ENTITIES.items() if entity[1:] in html5):
        raise ValueError("ftfy's HTML entities are not Python's")
    every = [chr(c) for c in range(0x10000) if not 0xD800 <= c <= 0xDFFF]
    return {
        "format": 1,
        "html5": html5,
        "ftfy_upper": upper,
        "invalid_charrefs": {str(k): v for k, v in sorted(html._invalid_charrefs.items())},
        "invalid_codepoints": sorted(html._invalid_codepoints),
        "c1": {chr(c): chr(c).encode("latin-1").decode("sloppy-windows-1252") for c in range(0x80, 0xA0)},
        "ligatures": {chr(k): v for k, v in sorted(chardata.LIGATURES.items())},
        "width": {chr(k): v for k, v in sorted(chardata.WIDTH_MAP.items())},
        "single_quotes": "".join(c for c in every if chardata.SINGLE_QUOTE_RE.fullmatch(c)),
        "double_quotes": "".join(c for c in every if chardata.DOUBLE_QUOTE_RE.fullmatch(c)),
        "control": sorted(chardata.CONTROL_CHARS),
    }


def write_tokenizer(tokenizer, folder: Path) -> dict:
    """Write clip-bpe.txt and clip-clean.json into ``folder``; the tokenizer's settings."""
    settings = tokenizer_settings(tokenizer)
    (Path(folder) / BPE).write_text("\n".join(merges(tokenizer)) + "\n", encoding="utf-8")
    (Path(folder) / CLEAN).write_text(json.dumps(clean_tables(), ensure_ascii=False, separators=(",", ":")),
                                      encoding="utf-8")
    return settings


def export(model, path: Path, context_length: int = 77) -> None:
    """An open_clip model's text tower (token ids -> unit-length text embedding) as one ONNX graph.

    Input ``input_ids`` (int64 [batch, context_length], as open_clip's tokenizer pads them),
    output ``embedding`` (float32 [batch, embed_dim], L2-normalised inside the graph). Exported in
    fp32 whatever the model's precision, so it compares with torch to float rounding.
    """
    import copy
    import warnings

    import torch

    tower = copy.deepcopy(model).float().cpu().eval()

    class TextTower(torch.nn.Module):
        def __init__(self, clip):
            super().__init__()
            self.clip = clip

        def forward(self, input_ids):
            return self.clip.encode_text(input_ids, normalize=True)

    ids = torch.zeros((1, context_length), dtype=torch.int64)
    ids[0, :3] = torch.tensor([49406, 320, 49407])
    root = logging.getLogger()
    previous = root.level
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)
        try:
            torch.onnx.export(TextTower(tower).eval(), (ids,), str(path), input_names=["input_ids"],
                              output_names=["embedding"], dynamic_axes={"input_ids": {0: "batch"}, "embedding": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        finally:
            root.setLevel(previous)


def onnx_embed(model_path: Path, tokenizer, texts: list[str], batch_size: int = 32) -> "np.ndarray":
    """Embed texts with the exported graph in Python onnxruntime (open_clip's own tokenizer)."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    out = []
    for start in range(0, len(texts), batch_size):
        ids = tokenizer(list(texts[start:start + batch_size])).numpy().astype(np.int64)
        out.append(session.run(None, {"input_ids": ids})[0])
    return np.concatenate(out).astype(np.float32) if out else np.zeros((0, 0), np.float32)
