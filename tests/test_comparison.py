"""EmbeddingEncoder (a scikit-learn transformer of learned embeddings) and `compare`."""

from __future__ import annotations

import datetime as dt
import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import polars as pl
import pytest
import torch
from sklearn.base import clone
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.utils.estimator_checks import check_estimator

from rossmann_embed.cli import main
from rossmann_embed.rossmann.feature_groups import PAPER_FEATURES
from rossmann_embed.rossmann.studies.comparison import (
    CompareOptions,
    comparison_split,
    freeze_one_hot,
    setting_spec,
)
from rossmann_embed.rossmann.studies.comparison_report import paper_layout, with_and_without
from rossmann_embed.rossmann.studies.synthetic import write_synthetic
from rossmann_embed.tabular.config import NetworkConfig
from rossmann_embed.tabular.embedding_encoder import EmbeddingEncoder, embedding_rows
from rossmann_embed.tabular.encoding import ColumnSpec, Preprocessor
from rossmann_embed.tabular.metrics import mape
from rossmann_embed.tabular.model import EntityEmbeddingNetwork

STORES = [1, 2, 5]
STATES = ["BY", "HB,NI"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: a second OpenMP thread only adds sync cost, badly so on shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _encoder(**kwargs) -> EmbeddingEncoder:
    """Store vectors: row r is (r, 10 r); state vectors: row r is (-r, -r, -r)."""
    store = np.array([[r, 10 * r] for r in range(len(STORES) + 1)], dtype=np.float32)
    state = -np.repeat(np.arange(len(STATES) + 1, dtype=np.float32)[:, None], 3, axis=1)
    return EmbeddingEncoder({"Store": store, "State": state},
                            {"Store": STORES, "State": STATES}, **kwargs)


def _frame() -> pl.DataFrame:
    return pl.DataFrame({
        "Store": [1, 5, 9, None],  # 9: never seen; None: missing -> both the unknown row
        "Distance": [0.5, 1.5, 2.5, 3.5],
        "State": ["HB,NI", "BY", "XX", "BY"],
    })


# --- EmbeddingEncoder ----------------------------------------------------------------------------


def test_transform_replaces_categories_in_place_and_passes_others_through():
    out = _encoder().fit(_frame()).transform(_frame())
    expected = np.array([
        [1, 10, 0.5, -2, -2, -2],
        [3, 30, 1.5, -1, -1, -1],
        [0, 0, 2.5, 0, 0, 0],  # unknown store and state -> row 0
        [0, 0, 3.5, -1, -1, -1],  # missing store -> row 0
    ])
    np.testing.assert_array_equal(out, expected)
    assert out.dtype == np.float64


def test_feature_names_out():
    encoder = _encoder().fit(_frame())
    assert list(encoder.get_feature_names_out()) == [
        "Store_0", "Store_1", "Distance", "State_0", "State_1", "State_2"]
    assert list(encoder.feature_names_in_) == ["Store", "Distance", "State"]
    assert encoder.n_features_in_ == 3
    assert list(_encoder().get_feature_names_out()) == [  # unfitted: the embedded columns
        "Store_0", "Store_1", "State_0", "State_1", "State_2"]


def test_numpy_input_follows_columns_order():
    frame = _frame()
    by_name = _encoder().transform(frame)
    encoder = _encoder(columns=["Store", "Distance", "State"])
    as_objects = frame.to_numpy()  # object array: ints, floats and strings
    np.testing.assert_array_equal(encoder.fit(as_objects).transform(as_objects), by_name)
    as_text = np.array([["1", "0.5", "HB,NI"], ["5", "1.5", "BY"]])  # one string column
    np.testing.assert_array_equal(encoder.transform(as_text), by_name[:2])
    assert not hasattr(encoder, "feature_names_in_")
    assert encoder.get_feature_names_out()[2] == "Distance"


def test_numpy_input_without_columns_is_the_embedded_columns():
    encoder = _encoder()
    out = encoder.transform(np.array([[2, "BY"], [7, "HB,NI"]], dtype=object))
    np.testing.assert_array_equal(out, [[2, 20, -1, -1, -1], [0, 0, -2, -2, -2]])
    with pytest.raises(ValueError, match="X has 3 features"):
        encoder.transform(np.zeros((2, 3)))


def test_frame_columns_are_taken_by_name():
    encoder = _encoder().fit(_frame())
    shuffled = _frame().select("State", "Store", "Distance").with_columns(extra=pl.lit(1))
    np.testing.assert_array_equal(encoder.transform(shuffled), encoder.transform(_frame()))
    with pytest.raises(ValueError, match="missing columns"):
        encoder.transform(_frame().drop("Distance"))


def test_pandas_input_and_polars_output():
    pandas = _frame().to_pandas()
    encoder = clone(_encoder()).set_output(transform="polars")
    out = encoder.fit_transform(pandas)
    assert isinstance(out, pl.DataFrame)
    assert out.columns == list(_encoder().fit(_frame()).get_feature_names_out())


def test_bad_parameters_and_input_are_reported():
    with pytest.raises(ValueError, match="expected 4 rows"):
        EmbeddingEncoder({"Store": np.zeros((3, 2))}, {"Store": STORES}).transform(_frame())
    with pytest.raises(ValueError, match="same columns"):
        EmbeddingEncoder({"Store": np.zeros((4, 2))}, {}).fit(_frame())
    with pytest.raises(ValueError, match="'Name'.*must be numeric"):
        _encoder().transform(_frame().with_columns(Name=pl.lit("a")))
    with pytest.raises(TypeError, match="sparse"):
        import scipy.sparse as sp

        _encoder().transform(sp.csr_matrix(np.ones((2, 2))))


def test_embedding_rows_match_numbers_and_text():
    values = pl.Series([5.0, 1.0, 3.0, None])
    np.testing.assert_array_equal(embedding_rows(values, STORES), [3, 1, 0, 0])
    np.testing.assert_array_equal(embedding_rows(pl.Series(["5", "x"]), STORES), [3, 0])
    np.testing.assert_array_equal(embedding_rows(pl.Series([True, False]), [0, 1]), [2, 1])


def test_in_a_pipeline_with_clone_grid_search_and_pickle():
    rng = np.random.default_rng(0)
    n = 120
    frame = pl.DataFrame({
        "Store": rng.choice(STORES, n), "Distance": rng.normal(size=n),
        "State": rng.choice(STATES, n),
    })
    store_row = frame.get_column("Store").replace_strict(STORES, [1, 2, 3]).to_numpy()
    y = 2.0 * store_row + frame.get_column("Distance").to_numpy()  # linear in store vectors
    pipeline = make_pipeline(_encoder(), Ridge(alpha=1e-6))
    pipeline.fit(frame, y)
    assert pipeline.score(frame, y) > 0.99  # store vectors (r, 10 r) carry the store effect
    search = GridSearchCV(pipeline, {"ridge__alpha": [1e-6, 1.0]}, cv=3).fit(frame, y)
    assert search.best_score_ > 0.99
    copy = clone(pipeline)
    assert isinstance(copy, Pipeline) and copy.steps[0][1].embeddings is not None
    restored = pickle.loads(pickle.dumps(pipeline))
    np.testing.assert_allclose(restored.predict(frame), pipeline.predict(frame))
    assert list(pipeline[:-1].get_feature_names_out())[:2] == ["Store_0", "Store_1"]


def test_passes_scikit_learn_estimator_checks():
    # The default encoder embeds nothing (pure passthrough): the checks exercise the
    # scikit-learn contract (fit returns self, n_features_in_, errors, pickling, set_output).
    failed = [r for r in check_estimator(EmbeddingEncoder(), on_fail=None)
              if r["status"] == "failed"]
    assert not failed, [(r["check_name"], str(r["exception"])[:200]) for r in failed]


def _model_and_preprocessor() -> tuple[EntityEmbeddingNetwork, Preprocessor]:
    frame = pl.DataFrame({"Store": [1, 2, 5, 5], "State": ["BY", "HB,NI", "BY", "BY"],
                          "Sales": [1.0, 2.0, 3.0, 4.0]})
    spec = ColumnSpec({"Store": 3, "State": 2}, [], "Sales")
    preprocessor = Preprocessor(spec).fit(frame)
    torch.manual_seed(0)
    config = NetworkConfig(embedding_sizes={"Store": 4, "State": 2}, hidden_sizes=[8],
                           dropout=[0.0])
    model = EntityEmbeddingNetwork(config, preprocessor.cardinalities, 0, "log")
    return model, preprocessor


def test_from_model_and_from_run_use_the_model_weights():
    model, preprocessor = _model_and_preprocessor()
    encoder = EmbeddingEncoder.from_model(model, preprocessor)
    out = encoder.transform(pl.DataFrame({"Store": [5, 7], "State": ["BY", "BY"]}))
    store = model.embeddings["Store"].weight.detach().numpy()
    np.testing.assert_allclose(out[:, :4], store[[3, 0]])  # 5 is vocabulary[2] -> row 3
    run = SimpleNamespace(models=[model, model], preprocessor=preprocessor)
    only_store = EmbeddingEncoder.from_run(run, member=1, embed=["Store"])
    assert list(only_store.embeddings) == ["Store"]
    with pytest.raises(ValueError, match="member"):
        EmbeddingEncoder.from_run(run, member=2)


def test_one_hot_network_sees_one_hot_vectors():
    model, _ = _model_and_preprocessor()
    config = NetworkConfig(embedding_sizes=model.hparams.cardinalities, hidden_sizes=[8],
                           dropout=[0.0])
    one_hot = EntityEmbeddingNetwork(config, model.hparams.cardinalities, 0, "log")
    freeze_one_hot(one_hot)
    weights = one_hot.embeddings["Store"].weight
    assert torch.equal(weights, torch.eye(4)) and not weights.requires_grad


# --- compare -------------------------------------------------------------------------------------


def test_time_split_takes_the_latest_days_and_samples_the_rest():
    dates = pl.date_range(pl.date(2015, 1, 1), pl.date(2015, 1, 20), eager=True)
    rows = pl.DataFrame({"Date": dates.to_list() * 5, "Sales": list(range(100))})
    split = comparison_split(rows, 0.1, train_rows=30, seed=1)
    assert split.info["test_days"] == 2
    assert split.test.get_column("Date").min() == dt.date(2015, 1, 19)
    assert split.test.height == 10 and split.train.height == 30
    assert split.train.get_column("Date").max() < split.test.get_column("Date").min()
    again = comparison_split(rows, 0.1, train_rows=30, seed=1)
    assert split.train.equals(again.train)  # seeded


def test_setting_spec_paper_keeps_the_papers_seven_columns():
    full = ColumnSpec({c: 3 for c in [*PAPER_FEATURES, "StoreType"]}, ["Trend"], "Sales")
    paper = setting_spec("paper", full)
    assert list(paper.categorical) == PAPER_FEATURES and paper.continuous == []
    assert setting_spec("full", full) == full


def test_mape():
    assert mape(np.array([100.0, 200.0, 0.0]), np.array([110.0, 150.0, 5.0])) == pytest.approx(
        (0.1 + 0.25) / 2)


def test_paper_layout_and_summary():
    results = pl.DataFrame({
        "setting": ["paper"] * 4, "model": ["k-NN", "k-NN", "neural network", "neural network"],
        "features": ["one-hot", "embeddings", "one-hot", "embeddings"],
        "mape": [0.2, 0.1, 0.12, 0.11], "rmspe": [0.3, 0.15, 0.2, 0.18],
    })
    layout = paper_layout(results, "paper")
    assert layout.get_column("method").to_list() == [
        "k-NN", "neural network", "k-NN with EE", "neural network with EE"]
    assert layout.get_column("paper MAPE").to_list() == [0.290, 0.101, 0.116, 0.093]
    summary = with_and_without(results, "paper")
    assert summary.get_column("better with EE").to_list() == ["yes", "yes"]
    assert summary.get_column("change").to_list()[0] == "-50%"


def test_network_learning_rate_is_the_settings_unless_given():
    options = CompareOptions(data_dir="d", out="o")
    assert (options.network_learning_rate("paper"), options.network_learning_rate("full")) == (
        0.03, 0.003)
    for given in (0.01, 0.0):
        options = CompareOptions(data_dir="d", out="o", learning_rate=given)
        assert options.network_learning_rate("full") == given


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`rossmann-embed compare` end to end on a small synthetic folder, tiny sizes."""
    root = tmp_path_factory.mktemp("compare")
    write_synthetic(root / "data", n_stores=12, start="2014-09-01", end="2015-03-31", seed=3)
    main(["compare", "--data-dir", str(root / "data"), "--out", str(root / "out"),
          "--train-rows", "1500", "--epochs", "2", "--batch-size", "128", "--lr", "0.003",
          "--knn-test-rows", "100"])
    return root / "out"


def test_compare_writes_the_table(compared: Path):
    table = pl.read_csv(compared / "comparison.csv")
    assert table.columns == ["setting", "model", "features", "mape", "rmspe"]
    pairs = set(zip(table["model"], table["features"], strict=True))
    assert {("k-NN", "one-hot"), ("k-NN", "embeddings"), ("random forest", "codes"),
            ("random forest", "embeddings"), ("gradient boosting", "codes"),
            ("gradient boosting", "embeddings"), ("neural network", "one-hot"),
            ("neural network", "embeddings")} <= pairs
    assert set(table["features"]) <= {"codes", "one-hot", "embeddings"}
    assert set(table["setting"]) == {"paper"}
    assert table.select(pl.col("mape", "rmspe").is_finite().all()).row(0) == (True, True)
    assert table.get_column("mape").max() < 0.5  # every model learned something


def test_compare_writes_report_figure_and_timing(compared: Path):
    markdown = (compared / "comparison.md").read_text()
    assert "k-NN with EE" in markdown and "paper MAPE" in markdown and "Run time" in markdown
    report = json.loads((compared / "comparison.json").read_text())
    assert report["timing"]["total_seconds"] > 0
    assert "k-NN (embeddings)" in report["timing"]["settings"]["paper"]
    assert report["data"]["rows_train"] == 1500 and report["data"]["rows_knn_test"] == 100
    png = (compared / "comparison.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_compare_rejects_a_bad_test_fraction(tmp_path: Path, tiny_data: Path,
                                             capsys: pytest.CaptureFixture):
    with pytest.raises(SystemExit) as exit_info:
        main(["compare", "--data-dir", str(tiny_data), "--out", str(tmp_path),
              "--test-fraction", "1.5"])
    assert exit_info.value.code == 2
    assert "--test-fraction" in capsys.readouterr().err
