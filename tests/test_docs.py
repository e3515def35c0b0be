"""The manual's runnable examples run, so the manual cannot drift from the code.

A fenced ``bash`` or ``python`` block in ``docs/`` is runnable when the line before its fence
is a marker comment (invisible on the site)::

    <!-- runnable -->                 run it
    <!-- runnable needs=demo -->      run it beside ``demo/``: the quick start's demo
    <!-- runnable needs=kaggle -->    Kaggle's files as ``rossmann/`` ($ROSSMANN_DATA)
    <!-- runnable needs=movielens --> GroupLens' ml-100k as ``ml-100k/`` ($MOVIELENS_DATA)
    <!-- runnable needs=tables -->    the public tables as ``tables/`` ($TABLES_DATA)
    <!-- runnable makes=demo -->      the block that writes ``demo/`` (run once a session)

The blocks of one page run in order, in one scratch folder, as the reader would type them:
bash blocks with ``bash -e -o pipefail``, python blocks with this interpreter, both with this
environment's ``rossmann-embed`` first on PATH, and ``examples/`` linked in. ``demo/`` is the
output of the quick start's ``makes=demo`` block, made once and shared (blocks read it and
write elsewhere; ``DOCS_DEMO=FOLDER`` reuses the ``demo/`` in FOLDER from an earlier run
instead). Where a block needs data that is absent, it and the rest of its page are skipped,
saying why.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import ROOT, rossmann_dir

from tests.test_table_suite import suite

DOCS = ROOT / "docs"
MARKER = re.compile(r"^<!--\s*runnable(?P<words>(\s+[a-z]+=[a-z]+)*)\s*-->\s*$")
FENCE = re.compile(r"^(?P<fence>```+)\s*(?P<lang>[a-z]+)\b.*$")
LANGUAGES = ("bash", "python")
NEEDS = ("demo", "kaggle", "movielens", "tables")
BLOCK_SECONDS = 1800  # a generous ceiling: a hung block fails instead of hanging CI


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    needs: frozenset[str]
    makes: str | None

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks_of(page: Path) -> list[Block]:
    """The runnable blocks of one page, in order; a marker not followed by a bash or python
    fence is an error, so a typo cannot silently leave a block untested."""
    lines = page.read_text(encoding="utf-8").splitlines()
    found = []
    for i, text in enumerate(lines):
        marker = MARKER.match(text.strip())
        if not marker:
            if "runnable" in text and text.strip().startswith("<!--"):
                raise AssertionError(f"{page}:{i + 1}: malformed runnable marker {text!r}")
            continue
        words = dict(w.split("=") for w in marker["words"].split())
        assert set(words) <= {"needs", "makes"}, f"{page}:{i + 1}: unknown words {words}"
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        assert fence and fence["lang"] in LANGUAGES, (
            f"{page}:{i + 1}: a runnable marker must be followed by a ```bash or ```python fence")
        end = next(j for j in range(i + 2, len(lines)) if lines[j].strip() == fence["fence"])
        needs = frozenset(words["needs"].split(",")) if "needs" in words else frozenset()
        assert needs <= set(NEEDS), f"{page}:{i + 1}: needs one of {NEEDS}, got {sorted(needs)}"
        found.append(Block(page, i + 2, fence["lang"], "\n".join(lines[i + 2:end]) + "\n",
                           needs, words.get("makes")))
    return found


PAGES = sorted(DOCS.rglob("*.md"))
RUNNABLE = {page: blocks_of(page) for page in PAGES}


def movielens_dir() -> Path:
    return Path(os.environ.get("MOVIELENS_DATA",
                               ROOT.parent / "shared" / "data" / "movielens-100k"))


def environment() -> dict[str, str]:
    """This interpreter's environment, its scripts folder first on PATH (``rossmann-embed``)."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("OMP_NUM_THREADS", "2")
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return env


def run_block(block: Block, folder: Path) -> float:
    """Run one block in ``folder``; fail with its output if it fails. Returns its seconds."""
    if block.language == "bash":
        command = ["bash", "-e", "-o", "pipefail", "-c", block.code]
    else:
        script = folder / f".block-{block.page.stem}-{block.line}.py"
        script.write_text(block.code, encoding="utf-8")
        command = [sys.executable, script.name]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=folder, env=environment(), capture_output=True,
                          text=True, timeout=BLOCK_SECONDS)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        pytest.fail(f"{block} exited with status {done.returncode}\n--- block ---\n{block.code}"
                    f"--- stdout (end) ---\n{done.stdout[-3000:]}\n"
                    f"--- stderr (end) ---\n{done.stderr[-3000:]}", pytrace=False)
    print(f"{block}: {seconds:.1f} s")
    return seconds


def missing(need: str) -> str | None:
    """Why ``need`` cannot be met here, or None."""
    if need == "kaggle" and not (rossmann_dir() / "train.csv").is_file():
        return f"needs Kaggle's files, not found at {rossmann_dir()} (set ROSSMANN_DATA)"
    if need == "movielens" and not (movielens_dir() / "u.data").is_file():
        return f"needs MovieLens 100K, not found at {movielens_dir()} (set MOVIELENS_DATA)"
    if need == "tables" and not (suite.default_data_dir() / "tables.json").is_file():
        return (f"needs the public tables, not found at {suite.default_data_dir()} (set "
                "TABLES_DATA)")
    return None


@pytest.fixture(scope="session")
def demo_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder in which the quick start's ``makes=demo`` block ran (it holds ``demo/``)."""
    makers = [b for blocks in RUNNABLE.values() for b in blocks if b.makes == "demo"]
    assert len(makers) == 1, f"one block must make the demo, found {[str(b) for b in makers]}"
    if os.environ.get("DOCS_DEMO"):  # a folder holding demo/ from an earlier run: reuse it
        return Path(os.environ["DOCS_DEMO"])
    folder = tmp_path_factory.mktemp("docs-demo")
    run_block(makers[0], folder)
    assert (folder / "demo").is_dir(), f"{makers[0]} did not write demo/"
    return folder


def test_markers_are_well_formed() -> None:
    """Every page parses (a bad marker fails here), and the manual has runnable examples."""
    assert sum(len(b) for b in RUNNABLE.values()) >= 10


# Pages whose examples train for minutes: run with RUN_SLOW=1 (conftest), the rest always.
SLOW_PAGES = {"guides/rossmann.md", "errors.md", "guides/own-table.md", "guides/movielens.md",
              "guides/export.md", "guides/scale.md", "guides/embeddings.md",
              "guides/geography.md"}


@pytest.mark.parametrize("page", [
    pytest.param(p, marks=pytest.mark.slow) if str(p.relative_to(DOCS)) in SLOW_PAGES else p
    for p in PAGES if RUNNABLE[p]], ids=lambda p: str(p.relative_to(DOCS)))
def test_runnable_blocks(page: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    """The page's runnable blocks, in order, in one scratch folder."""
    seconds = 0.0
    for block in RUNNABLE[page]:
        why = next((w for w in map(missing, sorted(block.needs)) if w), None)
        if why:
            pytest.skip(f"{block} and the rest of its page: {why}")
        if "demo" in block.needs or block.makes == "demo":
            demo = request.getfixturevalue("demo_folder") / "demo"
            if not (tmp_path / "demo").exists():
                (tmp_path / "demo").symlink_to(demo, target_is_directory=True)
            if block.makes == "demo":
                continue  # it ran once, for the whole session
        if "kaggle" in block.needs and not (tmp_path / "rossmann").exists():
            (tmp_path / "rossmann").symlink_to(rossmann_dir(), target_is_directory=True)
        if "movielens" in block.needs and not (tmp_path / "ml-100k").exists():
            (tmp_path / "ml-100k").symlink_to(movielens_dir(), target_is_directory=True)
        if "tables" in block.needs and not (tmp_path / "tables").exists():
            (tmp_path / "tables").symlink_to(suite.default_data_dir(), target_is_directory=True)
        if not (tmp_path / "examples").exists():
            (tmp_path / "examples").symlink_to(ROOT / "examples", target_is_directory=True)
        seconds += run_block(block, tmp_path)
    print(f"{page.relative_to(ROOT)}: {seconds:.1f} s")


FIGURE = re.compile(r"!\[[^\]]*\]\((?P<path>[^)]+\.png)\)", re.S)
MAX_FIGURE_BYTES = 300_000


def test_figures_are_small_used_and_name_their_command() -> None:
    """Every figure under docs/images is at most 300 KB and shown on a page, and every figure
    a page shows has a caption (the lines after it) naming the command that drew it."""
    shown = set()
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FIGURE.finditer(text):
            target = (page.parent / match["path"]).resolve()
            assert target.is_file(), f"{page.relative_to(ROOT)}: {match['path']} not found"
            shown.add(target)
            caption = text[match.end():match.end() + 800]
            assert re.search(r"`(rossmann-embed|python) [^`]+`", caption), (
                f"{page.relative_to(ROOT)}: the caption of {match['path']} names no command")
    for image in sorted((DOCS / "images").glob("*.png")):
        assert image.stat().st_size <= MAX_FIGURE_BYTES, f"{image.name} is over 300 KB"
        assert image.resolve() in shown, f"{image.name} is on no page"


HASH = re.compile(r"`[0-9a-f]{7,40}`|\bcommits? [0-9a-f]{7,40}\b")
MACHINE_PATH = re.compile(r"(?<![\w.])/(tmp|work|home|root|Users)/")


def test_no_page_but_the_decisions_holds_a_commit_hash_or_machine_path() -> None:
    """History and where a run happened belong in the decisions page; every other page (and
    the README) gives today's result and the command that reproduces it."""
    pages = [ROOT / "README.md", *(page for page in PAGES if page.name != "decisions.md")]
    found = [f"{page.relative_to(ROOT)}:{number}: {line.strip()}"
             for page in pages
             for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
             if HASH.search(line) or MACHINE_PATH.search(line)]
    assert not found, "\n".join(found)
