"""Redraw the manual's figures (docs/images/*.png) from the outputs of the commands that make them.

The figures are results, not data: each is a figure a command of the package draws, made small
(at most MAX_BYTES) for the repository. Give the folders the commands wrote:

    rossmann-embed train --data-dir DATA --out RUN --features paper
    rossmann-embed embeddings --run RUN --out MAPS
    rossmann-embed movielens --data-dir ml-100k --out ML [--folds u1]
    rossmann-embed backtest --data-dir DATA --out BACKTEST
    rossmann-embed demo --out DEMO

    python scripts/docs_figures.py --paper-maps MAPS --movielens ML --backtest BACKTEST

Each figure is written to docs/images/ with a line to put under it on its page: the command
and the commit. A page whose figure changes is updated in the same commit (docs/index.md,
"About this manual").
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
MAX_BYTES = 300_000
MAX_WIDTH = 1100  # pixels: sharp on a page, small in the repository

# (option, figure the command drew, name in docs/images, what it shows)
FIGURES = [
    ("paper_maps", "figures/geography_map.png", "learned_map.png",
     "the paper setting's State embedding aligned onto Germany"),
    ("paper_maps", "figures/store_pca.png", "store_map.png",
     "the paper setting's Store embedding, first two principal components, by state"),
    ("movielens", "analysis/movie_pc1_pc2.png", "movie_factors.png",
     "the 50 most rated movies on their first two factor components"),
    ("backtest", "backtest.png", "backtest.png",
     "the backtest's daily RMSPE, forecast against LightGBM"),
    ("demo", "maps/figures/geography_map.png", "demo_map.png",
     "the demo's State embedding against its planted map (synthetic data)"),
]


def small_png(source: Path) -> bytes:
    """``source`` as a PNG of at most MAX_WIDTH pixels and 256 colours, under MAX_BYTES."""
    image = Image.open(source).convert("RGB")
    width = min(MAX_WIDTH, image.width)
    while True:
        height = round(image.height * width / image.width)
        small = image.resize((width, height), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        small.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(
            buffer, format="PNG", optimize=True)
        if buffer.tell() <= MAX_BYTES or width < 400:
            return buffer.getvalue()
        width = int(width * 0.85)


def commit() -> str:
    """The short hash of HEAD, with ``+changes`` when the package's code differs from it."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout.strip()
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD", "--", "rossmann_embed"], cwd=ROOT)
    return head + ("+changes" if dirty.returncode else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--paper-maps", type=Path,
                        help="output of `embeddings` on a `train --features paper` run")
    parser.add_argument("--movielens", type=Path, help="output of `rossmann-embed movielens`")
    parser.add_argument("--backtest", type=Path, help="output of `rossmann-embed backtest`")
    parser.add_argument("--demo", type=Path, help="output of `rossmann-embed demo`")
    parser.add_argument("--out", type=Path, default=IMAGES, help="default: docs/images")
    args = parser.parse_args(argv)
    given = [(o, f, n, w) for o, f, n, w in FIGURES if getattr(args, o) is not None]
    if not given:
        parser.error("give at least one of --paper-maps, --movielens, --backtest, --demo")
    args.out.mkdir(parents=True, exist_ok=True)
    status, at = 0, commit()
    for option, figure, name, what in given:
        source = getattr(args, option) / figure
        if not source.is_file():
            print(f"docs_figures: error: {source} not found (--{option.replace('_', '-')} "
                  "must be the folder the command wrote)", file=sys.stderr)
            status = 2
            continue
        data = small_png(source)
        (args.out / name).write_bytes(data)
        print(f"{args.out / name}: {len(data) / 1000:.0f} KB, {what}; from {source}, "
              f"commit {at}")
    return status


if __name__ == "__main__":
    sys.exit(main())
