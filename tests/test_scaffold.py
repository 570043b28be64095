"""`atlas new DIR`: a fresh content folder to fork, never over existing files."""

from __future__ import annotations

from click.testing import CliRunner

from atlas.cli import main
from atlas.core.config import load_config
from atlas.core.resources import default_content_dir


def test_new_copies_the_default_content(tmp_path):
    target = tmp_path / "my-atlas"
    result = CliRunner().invoke(main, ["new", str(target)])
    assert result.exit_code == 0, result.output
    default = default_content_dir()
    assert (target / "atlas.toml").read_text() == (default / "atlas.toml").read_text()
    assert (target / "index.md").is_file()
    assert load_config(target).sample.size == load_config(default).sample.size
    assert not (target / "artifacts").exists()


def test_new_refuses_a_non_empty_folder(tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.md").write_text("mine")
    result = CliRunner().invoke(main, ["new", str(target)])
    assert result.exit_code == 2
    assert "not empty" in result.output and "Traceback" not in result.output
    assert [p.name for p in target.iterdir()] == ["notes.md"]


def test_new_accepts_an_empty_folder(tmp_path):
    target = tmp_path / "empty"
    target.mkdir()
    assert CliRunner().invoke(main, ["new", str(target)]).exit_code == 0
    assert (target / "atlas.toml").is_file()


def test_generate_is_a_command_of_atlas():
    result = CliRunner().invoke(main, ["generate", "--help"])
    assert result.exit_code == 0
    assert "--model" in result.output and "--force" in result.output and "--content" in result.output
