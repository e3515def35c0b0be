"""One epoch of DDP on 2 CPU processes: shards train, exact val_rmspe across ranks.

Lightning's spawn-free ``ddp`` strategy relaunches ``sys.argv`` for the other ranks, which
under pytest would rerun the whole test session; so the training runs in a small script in
a subprocess, and each rank reports back through a JSON file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import torch
    from pytorch_lightning import Trainer
    from rossmann_embed.tabular.config import NetworkConfig
    from rossmann_embed.tabular.data import TensorDataModule
    from rossmann_embed.tabular.encoding import EncodedTable
    from rossmann_embed.tabular.metrics import rmspe
    from rossmann_embed.tabular.model import EntityEmbeddingNetwork

    torch.set_num_threads(1)  # two processes on two cores

    def table(n, seed):
        g = torch.Generator().manual_seed(seed)
        cat = torch.randint(0, 10, (n, 2), generator=g)
        cont = torch.randn(n, 3, generator=g)
        return EncodedTable(cat, cont, 7 + 0.1 * cont[:, 0] + 0.05 * cat[:, 0])

    class Recorder(EntityEmbeddingNetwork):
        def on_train_start(self):
            self.train_rows = 0
        def training_step(self, batch, batch_idx):
            self.train_rows += len(batch[0])
            return super().training_step(batch, batch_idx)

    train, val = table(1001, 0), table(333, 1)
    torch.manual_seed(0)
    config = NetworkConfig(hidden_sizes=[16, 8], ensemble_size=1, numerical_embedding="none")
    model = Recorder(config, {"a": 10, "b": 10}, 3, "log", y_range=(6.0, 8.0))
    trainer = Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=1,
                      logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, TensorDataModule(train, val, batch_size=64))
    pred = model.predict_log(val.categorical, val.continuous).numpy().astype(np.float64)
    report = {
        "world_size": trainer.world_size,
        "rank": trainer.global_rank,
        "train_rows": model.train_rows,
        "val_rmspe": float(trainer.callback_metrics["val_rmspe"]),
        "full_val_rmspe": rmspe(np.exp(val.target.double().numpy()), np.exp(pred)),
    }
    with open(f"{sys.argv[1]}/rank{trainer.global_rank}.json", "w") as f:
        json.dump(report, f)
    """
)


@pytest.mark.slow
def test_ddp_two_processes_shard_and_agree_on_val_rmspe(tmp_path: Path):
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [r["rank"] for r in reports] == [0, 1]
    assert all(r["world_size"] == 2 for r in reports)
    # Each rank trained on its own half of the rows.
    assert sum(r["train_rows"] for r in reports) == 1001
    # The logged metric is the exact RMSPE over all validation rows, on both ranks.
    for r in reports:
        assert abs(r["val_rmspe"] - r["full_val_rmspe"]) < 1e-4 * r["full_val_rmspe"]
