"""Two machines, simulated: `torchrun --nnodes 2` twice on this machine (CPU, gloo).

Each "node" runs one process. The script first trains on a streamed table with a model that
records the row ids of its batches, so the test can check that in every epoch the two ranks'
rows are disjoint and together cover the training rows; then it runs the real command,
`rossmann-embed fit --stream --num-nodes 2`, and the test predicts with the run it wrote.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from rossmann_embed.tabular.streaming import ROW_INDEX, Split
from rossmann_embed.tabular.workflow import predict_table

ROWS = 6000
SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import polars as pl
    import torch
    from pytorch_lightning import Trainer
    from rossmann_embed.cli import main
    from rossmann_embed.tabular.config import NetworkConfig
    from rossmann_embed.tabular.encoding import ColumnSpec, Preprocessor
    from rossmann_embed.tabular.model import EntityEmbeddingNetwork
    from rossmann_embed.tabular.streaming import (
        Split, StreamedDataModule, StreamedTable, row_groups)

    torch.set_num_threads(1)
    table_path, folder = sys.argv[1], sys.argv[2]

    class Recorder(EntityEmbeddingNetwork):
        def on_train_epoch_start(self):
            self.rows.append([])
        def training_step(self, batch, batch_idx):
            self.rows[-1] += (batch[0][:, 0] - 1).tolist()
            return super().training_step(batch, batch_idx)

    split = Split(0.1, seed=0)
    table = StreamedTable(row_groups([table_path]), ["id", "y"], lambda f: f, split).count()
    preprocessor = Preprocessor(ColumnSpec({"id": 0}, [], "y", "none")).fit(
        pl.read_parquet(table_path))
    config = NetworkConfig(hidden_sizes=[8], ensemble_size=1, numerical_embedding="none")
    model = Recorder(config, preprocessor.cardinalities, 0, "none")
    model.rows = []
    trainer = Trainer(accelerator="cpu", devices=1, num_nodes=2, strategy="ddp", max_epochs=2,
                      logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, StreamedDataModule(table, preprocessor, batch_size=128, seed=0))
    with open(f"{folder}/rank{trainer.global_rank}.json", "w") as handle:
        json.dump({"rank": trainer.global_rank, "world_size": trainer.world_size,
                   "rows": model.rows}, handle)

    main(["fit", "--table", table_path, "--target", "y", "--drop", "id", "--out",
          f"{folder}/run", "--stream", "--num-nodes", "2", "--devices", "1",
          "--accelerator", "cpu", "--strategy", "ddp", "--epochs", "2", "--seeds", "1",
          "--hidden-sizes", "16", "--ensemble-size", "2"])
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _table(path: Path) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    shop = rng.integers(0, 20, ROWS)
    frame = pl.DataFrame({"id": np.arange(ROWS), "shop": [f"s{s}" for s in shop],
                          "x": rng.normal(size=ROWS),
                          "y": np.linspace(1, 3, 20)[shop] + rng.normal(0, 0.1, ROWS)})
    frame.write_parquet(path, row_group_size=500)
    return frame


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo on loopback: Linux")
def test_two_nodes_under_torchrun_share_each_epoch_and_write_a_run_that_predicts(tmp_path):
    frame = _table(tmp_path / "t.parquet")
    script = tmp_path / "two_nodes.py"
    script.write_text(SCRIPT)
    port = str(_free_port())
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(
        [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
         "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", port,
         str(script), str(tmp_path / "t.parquet"), str(tmp_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for rank in range(2)]
    outputs = []
    try:
        for node in nodes:
            outputs.append(node.communicate(timeout=300)[0])
    finally:
        for node in nodes:
            node.kill()
    assert all(n.returncode == 0 for n in nodes), "\n".join(o[-3000:] for o in outputs)

    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["world_size"] for r in reports] == [2, 2]
    held = frame.with_row_index(ROW_INDEX).select(Split(0.1, seed=0).held()).to_series()
    train_ids = np.flatnonzero(~held.to_numpy())
    for epoch in range(2):
        first, second = (set(r["rows"][epoch]) for r in reports)
        assert not first & second, f"epoch {epoch}: the ranks' rows overlap"
        both = reports[0]["rows"][epoch] + reports[1]["rows"][epoch]
        assert sorted(both) == train_ids.tolist(), f"epoch {epoch}: rows missed or repeated"

    run = tmp_path / "run"
    assert json.loads((run / "training.json").read_text())["rows"] == len(train_ids)
    out = tmp_path / "predictions.csv"
    report = predict_table(run, tmp_path / "t.parquet", out)
    predictions = pl.read_csv(out).get_column("prediction")
    assert report["rows"] == ROWS and predictions.is_finite().all()
    assert np.corrcoef(predictions, frame.get_column("y"))[0, 1] > 0.5
