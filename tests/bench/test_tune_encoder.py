"""The tuning script starts from `profilestream train`'s defaults and routes each override to its config."""

from __future__ import annotations

import pytest

from bench.tune_encoder import configs


def test_overrides_go_to_the_config_that_owns_them() -> None:
    train_config, encoder_config = configs({"negatives": 4096, "dropout": 0.3}, seed=2)
    assert (train_config.negatives, train_config.seed) == (4096, 2)
    assert (train_config.epochs, train_config.validation_fraction, train_config.refit) == (10, 0.0, False)
    assert (encoder_config.dropout, encoder_config.hidden_dim, encoder_config.recency_memory) == (0.3, 32, True)


def test_an_unknown_override_is_refused() -> None:
    with pytest.raises(SystemExit, match="no_such_option"):
        configs({"no_such_option": 1}, seed=0)
