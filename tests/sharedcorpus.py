"""The project's shared corpus of real kernel logs, found as ``../shared/corpus``
from the repository root (beside the checkout, as CI clones it).

Every test that reads the corpus finds it here.  When the directory or a
file is missing the test skips and says so, and under ``CI=true`` it fails
instead: the corpus is a required part there (crashbuilds.require).
"""

from pathlib import Path
from typing import List, Optional

__all__ = ["CORPUS", "corpus_file", "corpus_files", "corpus_params", "need_corpus"]

REPO = Path(__file__).resolve().parent.parent
#: the shared corpus directory, relative to the repository root
CORPUS = REPO.parent / "shared" / "corpus"


def _require(ok: bool, what: str) -> None:
    from crashbuilds import require   # imported here: fuzz.py uses CORPUS outside pytest
    require(ok, f"{what} is not here (the shared corpus is looked up as ../shared/corpus "
                f"from the repository root: {CORPUS})")


def _files() -> List[str]:
    return sorted(str(p) for p in CORPUS.glob("*") if p.is_file()) if CORPUS.is_dir() else []


def corpus_file(name: str) -> str:
    """The path of corpus file ``name``; skip (fail under CI=true) when absent."""
    path = CORPUS / name
    _require(path.is_file(), f"corpus file {name}")
    return str(path)


def corpus_files() -> List[str]:
    """Every file of the corpus, sorted; skip (fail under CI=true) when the
    directory is missing or empty."""
    files = _files()
    _require(bool(files), "the shared corpus")
    return files


def corpus_params() -> list:
    """Parameters for a test run once per corpus file, collected at import.

    Without the corpus there is one parameter, ``None``, which
    :func:`need_corpus` turns into a skip (a failure under CI=true) naming the
    missing directory: a test with no parameters at all would pass by
    testing nothing."""
    import pytest
    return _files() or [pytest.param(None, id="shared-corpus-missing")]


def need_corpus(path: Optional[str]) -> str:
    """The path a :func:`corpus_params` parameter stands for, or skip/fail."""
    _require(path is not None, "the shared corpus")
    return path
