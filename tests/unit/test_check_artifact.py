"""tools/check_artifact.py, which ``make build`` runs on the artifact: it passes only bytecode a cold start uses."""

from __future__ import annotations

import py_compile
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = runpy.run_path(str(ROOT / "tools" / "check_artifact.py"))


def module(root: Path, name: str, mode: py_compile.PycInvalidationMode | None) -> Path:
    source = root / "pkg" / f"{name}.py"
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(f"NAME = {name!r}\n")
    if mode is not None:
        py_compile.compile(str(source), doraise=True, invalidation_mode=mode)
    return source


def test_hash_checked_bytecode_that_matches_its_source_passes(tmp_path: Path) -> None:
    module(tmp_path, "fine", py_compile.PycInvalidationMode.CHECKED_HASH)

    assert TOOL["check"](tmp_path) == []


@pytest.mark.parametrize(
    ("mode", "edit", "reason"),
    [
        (None, False, "no fine."),
        (py_compile.PycInvalidationMode.TIMESTAMP, False, "is not hash-checked"),
        (py_compile.PycInvalidationMode.UNCHECKED_HASH, False, "is not hash-checked"),
        (py_compile.PycInvalidationMode.CHECKED_HASH, True, "does not match its source"),
    ],
)
def test_bytecode_a_cold_start_would_not_use_is_named(
    tmp_path: Path, mode: py_compile.PycInvalidationMode | None, edit: bool, reason: str
) -> None:
    source = module(tmp_path, "fine", mode)
    if edit:
        source.write_text("NAME = 'edited after the build'\n")

    [problem] = TOOL["check"](tmp_path)

    assert problem.startswith(str(Path("pkg") / "fine.py"))
    assert reason in problem


def test_bytecode_of_another_python_is_named(tmp_path: Path) -> None:
    source = module(tmp_path, "fine", py_compile.PycInvalidationMode.CHECKED_HASH)
    cached = source.parent / "__pycache__" / f"fine.{sys.implementation.cache_tag}.pyc"
    cached.write_bytes(b"\x00\x00\r\n" + cached.read_bytes()[4:])

    assert "is for another Python" in TOOL["check"](tmp_path)[0]


def test_the_exit_status_says_whether_every_function_artifact_passed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "template.yaml").write_text("Resources: {}\n")  # a sam build folder: an artifact per function
    module(tmp_path / "ApiFunction", "fine", py_compile.PycInvalidationMode.CHECKED_HASH)
    module(tmp_path / "PollerFunction", "fine", py_compile.PycInvalidationMode.CHECKED_HASH)
    assert TOOL["main"]([str(tmp_path)]) == 0

    module(tmp_path / "PollerFunction", "stale", py_compile.PycInvalidationMode.TIMESTAMP)
    assert TOOL["main"]([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "ApiFunction: all 1 modules have hash-checked" in out
    assert "PollerFunction: 1 of 2 modules would be compiled at a cold start" in out
    assert "stale.py" in out


def test_bytecode_written_outside_the_artifact_does_not_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PYTHONPYCACHEPREFIX at build time: the bytecode lands under the prefix, which the runtime never reads.
    monkeypatch.setattr(sys, "pycache_prefix", str(tmp_path / "elsewhere"))
    module(tmp_path / "artifact", "fine", py_compile.PycInvalidationMode.CHECKED_HASH)

    [problem] = TOOL["check"](tmp_path / "artifact")

    assert "no fine." in problem


def test_a_folder_without_a_built_template_is_one_artifact(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    module(tmp_path, "fine", py_compile.PycInvalidationMode.CHECKED_HASH)

    assert TOOL["main"]([str(tmp_path)]) == 0
    assert (
        capsys.readouterr().out
        == f"{tmp_path.name}: all 1 modules have hash-checked {sys.implementation.cache_tag} bytecode\n"
    )
