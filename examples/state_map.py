"""The State embedding of a `train` run, projected to 2-D beside the map it should recover.

    python examples/state_map.py [--run demo/run] [--reference demo/data/locations_states.csv]
                                 [--out state_map.png]

The default is the quick start's demo (`rossmann-embed demo --out demo`): synthetic stores
whose states sit at planted positions (``--reference``). For a run on Kaggle's files, leave
``--reference`` out: the states are then scored against the German capitals.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

from rossmann_embed.rossmann.maps import score_state_vectors  # noqa: E402
from rossmann_embed.runs import load_run  # noqa: E402
from rossmann_embed.tabular.embedding_encoder import EmbeddingEncoder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("demo/run"))
    parser.add_argument("--reference", type=Path,
                        default=Path("demo/data/locations_states.csv"),
                        help="State,x,y positions (leave out for German capitals)")
    parser.add_argument("--out", type=Path, default=Path("state_map.png"))
    args = parser.parse_args()

    # One member's vectors: each seed learns its own, rotated embedding space.
    encoder = EmbeddingEncoder.from_run(load_run(args.run), embed=["State"])
    codes = list(encoder.vocabularies["State"])
    vectors = encoder.embeddings["State"][1:]  # row 0 is for states never seen
    reference = pl.read_csv(args.reference) if args.reference.is_file() else None
    # The vectors' 2-D PCA, turned and scaled onto the map (Procrustes), and a Mantel test.
    score = score_state_vectors(codes, vectors, reference, permutations=999)
    print(f"Mantel r {score.mantel_r:.2f} (p {score.mantel_p:.3f}): how well distances "
          "between the embeddings follow distances on the map")

    figure, (learned, actual) = plt.subplots(1, 2, figsize=(9, 4))
    for axes, points, title in (
            (learned, score.aligned, f"State embedding (Mantel r {score.mantel_r:.2f})"),
            (actual, score.reference, "where the states are")):
        axes.scatter(points[:, 0], points[:, 1], color="tab:blue")
        for code, (x, y) in zip(codes, points, strict=True):
            axes.annotate(code, (x, y), xytext=(3, 3), textcoords="offset points")
        axes.set_title(title)
        axes.set_xticks([])
        axes.set_yticks([])
    figure.tight_layout()
    figure.savefig(args.out, dpi=80)
    print(f"figure -> {args.out}")


if __name__ == "__main__":
    main()
