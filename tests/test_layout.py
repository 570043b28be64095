"""The layout's rules, read from the imports (docs/ARCHITECTURE.md): folders are jobs, and no
folder reaches up into one that builds on it."""

from __future__ import annotations

import ast
from pathlib import Path

import atlas

ROOT = Path(atlas.__file__).resolve().parent
#: (importing folder, imported folder) pairs that would make the layers loop.
FORBIDDEN = {
    ("stages", "site"), ("stages", "commands"),
    ("models", "stages"), ("models", "site"), ("models", "data"),
    ("core", "data"), ("core", "stages"), ("core", "site"), ("core", "models"), ("core", "text"), ("core", "fetch"),
    ("data", "stages"), ("data", "site"), ("data", "models"), ("data", "fetch"),
    ("text", "stages"), ("text", "site"), ("text", "data"), ("text", "models"),
    ("fetch", "stages"), ("fetch", "site"),
}
#: Top-level modules: the thin edges (the CLI, the build, the server, `atlas new`).
TOP = {"cli", "build", "serve", "scaffold", "__init__", "__main__"}


def _imports() -> list[tuple[str, str, str]]:
    """(module path, importing folder, imported module) for every atlas import, lazy ones included."""
    found = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        folder = rel.parts[0] if len(rel.parts) > 1 else "top"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("atlas"):
                names = [node.module] if node.module != "atlas" else [f"atlas.{a.name}" for a in node.names]
                found += [(str(rel), folder, name) for name in names]
            elif isinstance(node, ast.Import):
                found += [(str(rel), folder, a.name) for a in node.names if a.name.startswith("atlas")]
    return found


def _folder(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and (ROOT / parts[1]).is_dir() else "top"


def test_folders_import_only_the_layers_below_them():
    bad = [(where, module) for where, folder, module in _imports() if (folder, _folder(module)) in FORBIDDEN]
    assert not bad, bad


def test_only_the_edges_live_at_the_top_and_nothing_below_imports_them():
    top = {p.stem for p in ROOT.glob("*.py")}
    assert top <= TOP, top - TOP
    bad = [(where, module) for where, folder, module in _imports()
           if folder != "top" and _folder(module) == "top" and module.split(".")[1:2] != ["__version__"]
           and module != "atlas"]
    assert not bad, bad


def test_the_site_reads_stage_outputs_through_their_readers():
    """No module of site/ opens a stage's files by name (they go through ``<stage>.read``)."""
    names = ("stats.json", "examples.json", "sample.parquet", "embeddings.npy", "coords.npy", "clusters.json",
             "info.json", "neighbours.json", "prompt_captions.json", "bias.json")
    bad = []
    for path in (ROOT / "site").rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        bad += [(str(path.relative_to(ROOT)), n) for n in names if f'"{n}"' in text or f"'{n}'" in text]
    assert not bad, bad


def test_only_settings_reads_the_environment():
    """``os.environ`` / ``os.getenv`` in core/settings.py only (read once, at the edge, into
    ``Settings``); project.py only sets numba's cache folder for the process."""
    allowed = {"core/settings.py", "stages/project.py"}
    bad = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
                    and isinstance(node.value, ast.Name) and node.value.id == "os" and rel not in allowed):
                bad.append((rel, node.lineno))
    assert not bad, bad


def test_models_hold_the_embedders_and_the_stage_only_the_stage():
    """Each ``[embed] method`` has its embedder in models/ (the registry), and stages/embed.py
    loads no model library itself."""
    from atlas.models.embedder import registry

    assert {loader.__module__ for loader in registry().values()} == {
        "atlas.models.clip", "atlas.models.captionmodel", "atlas.models.tfidf", "atlas.models.precomputed"}
    imported = set()
    for node in ast.walk(ast.parse((ROOT / "stages" / "embed.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
    assert not imported & {"torch", "open_clip", "sentence_transformers", "transformers", "sklearn", "huggingface_hub"}


def test_no_module_is_over_the_size_the_architecture_allows():
    """~600 lines a module; the exceptions are named in docs/ARCHITECTURE.md with the reason."""
    allowed = {"stages/stats.py": 920, "commands/generate.py": 800, "stages/project.py": 700,
               "core/config.py": 680}
    over = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).as_posix()
        n = len(path.read_text(encoding="utf-8").splitlines())
        if n > allowed.get(rel, 620):
            over[rel] = n
    assert not over, over


def test_tests_share_helpers_through_tests_helpers_not_conftest():
    """conftest.py is pytest's (fixtures and hooks); what tests share is imported from tests/helpers/,
    and no skip marker or tiny model is defined twice."""
    tests = Path(__file__).resolve().parent
    offenders, markers = [], {}
    for path in sorted(tests.glob("*.py")) + sorted((tests / "helpers").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in ("conftest", "browser"):
                offenders.append(f"{path.name}:{node.lineno}")
            if isinstance(node, ast.Import) and any(a.name in ("conftest", "browser") for a in node.names):
                offenders.append(f"{path.name}:{node.lineno}")
            if isinstance(node, (ast.FunctionDef, ast.Assign)):
                names = [node.name] if isinstance(node, ast.FunctionDef) else [
                    t.id for t in node.targets if isinstance(t, ast.Name)]
                for name in names:
                    if name.startswith("needs_") or name in ("tiny_clip", "save_tiny_clip", "_Quiet"):
                        markers.setdefault(name, []).append(path.name)
    assert not offenders, f"import these from tests/helpers/ instead: {offenders}"
    twice = {name: files for name, files in markers.items() if len(files) > 1}
    assert not twice, f"defined more than once (keep one in tests/helpers/ or conftest.py): {twice}"
