"""Keras models in (spikeconv.tasks.keras), read without Keras: a legacy HDF5 file written here with h5py
against a NumPy transcription of Keras' semantics; Sequential and Functional models built and saved by Keras
itself (.keras and .h5, every supported layer, TensorFlow's asymmetric "same" padding) against Keras'
predictions; a loaded model through the converter; bad files and unsupported layers named."""

import json
import os

import numpy as np
import pytest
import torch

from spikeconv import ConversionConfig, convert, simulate
from spikeconv.errors import CheckpointError, ConversionError
from spikeconv.tasks.keras import load_keras
from spikeconv.tasks.loading import load_user_model

h5py = pytest.importorskip("h5py")


def _keras():
    os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 runs on PyTorch: no TensorFlow needed
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "torch":
        pytest.skip("keras is set up for another backend")
    return keras


def _layer(kind, name, **config):
    return {"class_name": kind, "config": {"name": name, **config}}


def _write_legacy(path, layers, weights):
    config = {"class_name": "Sequential", "config": {"name": "net", "layers": layers}}
    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = json.dumps(config)
        handle.attrs["keras_version"] = "2.15.0"
        group = handle.create_group("model_weights")
        names = [layer["config"]["name"] for layer in layers]
        group.attrs["layer_names"] = [name.encode() for name in names]
        for name in names:
            sub = group.create_group(name)
            arrays = weights.get(name, [])
            sub.attrs["weight_names"] = [f"{name}/{var}:0".encode() for var, _ in arrays]
            for var, array in arrays:
                sub.create_dataset(f"{name}/{var}:0", data=array)


def test_a_legacy_h5_written_with_h5py_matches_keras_semantics_in_numpy(tmp_path):
    rng = np.random.default_rng(0)
    kernel, bias = rng.normal(size=(3, 3, 2, 4)).astype(np.float32), rng.normal(size=4).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 2, 4).astype(np.float32), rng.normal(size=4).astype(np.float32)
    mean, var = rng.normal(size=4).astype(np.float32), rng.uniform(0.5, 2, 4).astype(np.float32)
    dense, dense_bias = rng.normal(size=(16, 3)).astype(np.float32), rng.normal(size=3).astype(np.float32)
    layers = [_layer("Conv2D", "conv", filters=4, kernel_size=[3, 3], strides=[2, 2], padding="same",
                     activation="relu", use_bias=True, batch_input_shape=[None, 8, 8, 2]),
              _layer("BatchNormalization", "bn", axis=-1, epsilon=1e-3, center=True, scale=True),
              _layer("MaxPooling2D", "pool", pool_size=[2, 2], strides=[2, 2], padding="valid"),
              _layer("Flatten", "flat"), _layer("Dropout", "drop", rate=0.5),
              _layer("Dense", "out", units=3, activation="softmax", use_bias=True)]
    weights = {"conv": [("kernel", kernel), ("bias", bias)],
               "bn": [("gamma", gamma), ("beta", beta), ("moving_mean", mean), ("moving_variance", var)],
               "out": [("kernel", dense), ("bias", dense_bias)]}
    _write_legacy(tmp_path / "net.h5", layers, weights)
    x = rng.normal(size=(5, 8, 8, 2)).astype(np.float32)  # NHWC, as Keras reads it
    # Keras' semantics, written out: TF "same" pads 8 -> 4 with (0, 1), then BN, 2x2 max, (h, w, c) flatten
    padded = np.pad(x, ((0, 0), (0, 1), (0, 1), (0, 0)))
    conv = np.stack([np.stack([np.einsum("nhwc,hwco->no", padded[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3], kernel)
                               for j in range(4)], 1) for i in range(4)], 1) + bias
    normed = (np.maximum(conv, 0) - mean) / np.sqrt(var + 1e-3) * gamma + beta
    pooled = normed.reshape(5, 2, 2, 2, 2, 4).max(axis=(2, 4))
    logits = pooled.reshape(5, -1) @ dense + dense_bias
    expected = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    model = load_user_model(str(tmp_path / "net.h5"))
    assert model.input_shape == (2, 8, 8)
    with torch.no_grad():
        out = model(torch.from_numpy(x).permute(0, 3, 1, 2))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)


def _random_batchnorm_stats(keras, model):
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 2, w.shape).astype(np.float32) if i in (0, 3)
                               else rng.normal(size=w.shape).astype(np.float32) for i, w in enumerate(layer.get_weights())])


def _functional(keras):
    layers = keras.layers
    inputs = keras.Input((10, 10, 3))
    a = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(inputs)  # 10 -> 5, padding (0, 1)
    b = layers.BatchNormalization()(a)
    c = layers.ReLU(max_value=6.0)(layers.DepthwiseConv2D(3, padding="same")(b))
    d = layers.Add()([b, c])
    e = layers.Conv2D(8, 1, use_bias=False)(layers.ZeroPadding2D(((1, 0), (0, 1)))(d))  # 6 x 6
    f = layers.Activation("relu")(e)
    g = layers.Concatenate()([layers.AveragePooling2D(2)(f), layers.MaxPooling2D(2)(f)])  # 16 x 3 x 3
    h = layers.Dropout(0.5)(layers.GlobalAveragePooling2D()(g))
    return keras.Model(inputs, layers.Dense(5, activation="softmax")(h))


def _sequential(keras):
    layers = keras.layers
    return keras.Sequential([keras.Input((12, 12, 1)), layers.Conv2D(6, 3, activation="relu"),
                             layers.BatchNormalization(), layers.MaxPooling2D(2), layers.Conv2D(8, 3, padding="same"),
                             layers.Activation("relu"), layers.Flatten(), layers.Dropout(0.3),
                             layers.Dense(16, activation="relu"), layers.Dense(4)])


@pytest.mark.parametrize("build", [_functional, _sequential])
@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_models_saved_by_keras_load_and_predict_the_same(build, suffix, tmp_path):
    keras = _keras()
    keras.utils.set_random_seed(0)
    model = build(keras)
    _random_batchnorm_stats(keras, model)
    path = tmp_path / f"model{suffix}"
    model.save(path)
    x = np.random.default_rng(2).normal(size=(4, *model.input_shape[1:])).astype(np.float32)
    expected = np.asarray(model.predict(x, verbose=0))
    loaded = load_keras(path)
    with torch.no_grad():
        out = loaded(torch.from_numpy(x).permute(0, 3, 1, 2))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_a_loaded_keras_model_converts_and_its_snn_follows_it(tmp_path):
    keras = _keras()
    keras.utils.set_random_seed(3)
    model = _sequential(keras)
    model.save(tmp_path / "net.keras")
    ann = load_keras(tmp_path / "net.keras")
    x = torch.rand(16, 1, 12, 12)
    snn = convert(ann, x, ConversionConfig(signed=False, max_strength=1, percentile=100.0), calibration=[x])
    assert not [r for r in snn.report if r.status == "unsupported"]
    with torch.no_grad():
        reference = ann(x)
        readout = simulate(snn, x, 256)[-1]
    correlation = torch.corrcoef(torch.stack([reference.flatten(), readout.flatten()]))[0, 1]
    assert correlation > 0.95, float(correlation)


def test_bad_keras_files_and_layers_are_named(tmp_path):
    with h5py.File(tmp_path / "weights_only.h5", "w") as handle:
        handle.create_group("conv")
    with pytest.raises(CheckpointError, match="model_config"):
        load_keras(tmp_path / "weights_only.h5")
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="not a readable Keras model"):
        load_keras(tmp_path / "broken.keras")
    layers = [_layer("InputLayer", "in", batch_input_shape=[None, 4, 3]), _layer("LSTM", "rnn", units=4)]
    _write_legacy(tmp_path / "rnn.h5", layers, {})
    with pytest.raises(ConversionError, match="'rnn' is a LSTM.*supported: InputLayer"):
        load_keras(tmp_path / "rnn.h5")
    layers = [_layer("Conv2D", "c", filters=2, kernel_size=[3, 3], activation="tanh", batch_input_shape=[None, 5, 5, 1])]
    _write_legacy(tmp_path / "tanh.h5", layers, {"c": [("kernel", np.zeros((3, 3, 1, 2), np.float32)),
                                                      ("bias", np.zeros(2, np.float32))]})
    with pytest.raises(ConversionError, match="'c' uses activation 'tanh'"):
        load_keras(tmp_path / "tanh.h5")


def test_zero_padding_keeps_spikes_and_converts_exactly_at_the_bound():
    # a ZeroPad2d between a neuron and a conv: the scale passes, so the twin with P steps is the quantized ANN,
    # and with one neuron layer before the head the SNN at T = P reads out the quantized ANN itself
    from torch import nn

    from spikeconv.analysis import analog_twin
    from spikeconv.quant import QReLU

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 4, 3), QReLU(levels=4, bound=1.0, phi=0.5), nn.ZeroPad2d((0, 1, 1, 0)),
                        nn.Conv2d(4, 3, 3, stride=2), nn.Flatten(), nn.Linear(3 * 3 * 3, 5)).eval()
    x = torch.rand(6, 2, 8, 8)
    snn = convert(net, x, ConversionConfig())
    assert [r.status for r in snn.report if "ZeroPad" in r.operation] == ["passed"]
    with torch.no_grad():
        torch.testing.assert_close(analog_twin(snn, steps=4)(x), net(x), rtol=0, atol=1e-5)
        torch.testing.assert_close(simulate(snn, x, 4)[-1], net(x), rtol=0, atol=1e-5)
