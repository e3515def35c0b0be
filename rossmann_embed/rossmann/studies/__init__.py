"""Studies on top of the Rossmann pipeline: the rolling-origin backtest, the paper's
comparison with classic models, the geography study, and the synthetic data and demo."""
