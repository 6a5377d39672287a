"""Checks a built artifact's bytecode: ``python3.13 tools/check_artifact.py .aws-sam/build`` (``make build``), or
one artifact's folder.

Every ``.py`` file must have, in its ``__pycache__``, a ``.pyc`` for the running interpreter that is hash-checked
(PEP 552) and matches its source, so that no module is compiled at a cold start (``functions/Makefile`` says
why). Run it with the runtime's Python: the bytecode's magic number and source hash are that interpreter's.
Exits 1 and names the files when one is missing, stale or timestamp-based.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

CHECKED_HASH = 0b11  # PEP 552 flags: hash-based, check the source


def problem(source: Path) -> str | None:
    """Why ``source`` would be compiled at import, or None when its bytecode would be used."""
    # Where the Lambda runtime looks (not cache_from_source, which follows this process's pycache prefix and
    # optimization level).
    cached = source.parent / "__pycache__" / f"{source.stem}.{sys.implementation.cache_tag}.pyc"
    if not cached.is_file():
        return f"no {cached.name}"
    header = cached.read_bytes()[:16]
    if header[:4] != importlib.util.MAGIC_NUMBER:
        return f"{cached.name} is for another Python"
    if int.from_bytes(header[4:8], "little") != CHECKED_HASH:
        return f"{cached.name} is not hash-checked (a zip without timestamps never matches a timestamp .pyc)"
    if header[8:16] != importlib.util.source_hash(source.read_bytes()):
        return f"{cached.name} does not match its source"
    return None


def check(root: Path) -> list[str]:
    """Every problem under ``root``, as ``path: reason``."""
    return [
        f"{source.relative_to(root)}: {reason}"
        for source in sorted(root.rglob("*.py"))
        if (reason := problem(source)) is not None
    ]


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: check_artifact.py BUILD_DIR", file=sys.stderr)
        return 2
    build = Path(argv[0])
    # sam build's output is one folder per function, beside the built template; anything else is one artifact.
    is_sam_build = (build / "template.yaml").is_file()
    artifacts = sorted(p for p in build.iterdir() if p.is_dir()) if is_sam_build else [build]
    failed = False
    for artifact in artifacts:
        modules = sum(1 for _ in artifact.rglob("*.py"))
        problems = check(artifact)
        if not modules:
            failed = True
            print(f"{artifact.name}: no Python modules")
        elif problems:
            failed = True
            print(f"{artifact.name}: {len(problems)} of {modules} modules would be compiled at a cold start:")
            print("\n".join(f"  {line}" for line in problems[:20]))
        else:
            tag = sys.implementation.cache_tag
            print(f"{artifact.name}: all {modules} modules have hash-checked {tag} bytecode")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
