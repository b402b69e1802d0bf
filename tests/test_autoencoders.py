"""Autoencoders: a model whose loss compares its output with its own input trains on a dataset's features
alone, keeps a picture of reconstructions in its run folder, and predicts codes and reconstructions in the
data's units."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ROOT

import gradc

AUTOENCODER = ROOT / "models" / "autoencoder.model"
TIED = ROOT / "models" / "tied_autoencoder.model"


@pytest.mark.slow  # trains two models; test_the_bottleneck_is_at_most_8_and_the_tied_model_has_one_weight stays
@pytest.mark.parametrize("model", [AUTOENCODER, TIED], ids=["autoencoder", "tied_autoencoder"])
def test_an_autoencoder_trains_on_the_features_alone_and_pictures_its_reconstructions(cli, tmp_path, model):
    out = tmp_path / "run"
    result = cli("train", model, "--epochs", "4", "--out", out)
    assert result.code == 0, result
    assert "(reconstruction)" in result.out
    test = json.loads((out / "test.json").read_text())
    assert test["mae"] > 0 and test["rmse"] >= test["mae"]
    picture = (out / "reconstructions.png").read_bytes()
    assert picture.startswith(b"\x89PNG")

    from sklearn.datasets import load_digits

    digits = load_digits().data[:6].astype(np.float32)
    np.savez(tmp_path / "x.npz", x=digits)
    predicted = tmp_path / "p.npz"
    assert cli("predict", model, "--checkpoint", out / "best.npz", "--inputs", tmp_path / "x.npz",
               "-o", predicted).code == 0
    arrays = np.load(predicted)
    assert arrays["code"].shape == (6, 8) and arrays["recon"].shape == (6, 64)
    # in pixel units (0..16), not standardized ones: close to the digits, far from zero-mean values
    assert abs(float(arrays["recon"].mean()) - float(digits.mean())) < 2.0


def test_the_bottleneck_is_at_most_8_and_the_tied_model_has_one_weight():
    spec = gradc.load(AUTOENCODER)
    code = spec.graph.node(spec.graph.outputs["code"]).type.shape
    assert code[-1] <= 8
    tied = gradc.load(TIED).graph.params()
    assert [name for name in tied if name.endswith("weight")] == ["code.dense1.weight"]
