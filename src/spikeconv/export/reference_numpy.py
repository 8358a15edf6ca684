r"""A reference simulator of spikeconv's integer hardware export in NumPy alone (no torch, no spikeconv):
what a chip team runs to check its hardware against spikeconv, spike for spike.

Synaptic sums are exact integers (int8 codes times integer spikes, summed in int64); the rest follows
spikeconv's float32 arithmetic operation by operation (each NumPy float32 operation rounds once, as IEEE
single precision does everywhere), so the spikes equal spikeconv's bit for bit:

    x = fl(fl(float32(Q * S) * s) + b)
    V' = fl(V + x);  S = clamp(floor(V'), lower, S^max);  S = max(S, -V^b) [buffered]
    S = sign(S) * A(|S|),  A(a) = the largest power of two <= a  (S^max > 2 only)
    -V^b -= S [buffered];  V = V' - S (reset by subtraction) or V = 0 where S != 0 (reset to zero)

with ``V(0) = phi`` and ``V^b(0) = 0``. Usage::

    model = load("net.npz")
    spikes = run(model, currents, steps=8)   # currents: float32 [B, ...], the first neuron's input
    print(memory_bytes(model), synaptic_operations(model, spikes))
"""

from __future__ import annotations

import json

import numpy as np


def load(path) -> dict:
    """The graph (``layers``) and arrays of a file written by ``spikeconv.export.hardware.save_hardware``."""
    with np.load(path, allow_pickle=False) as data:
        meta = json.loads(str(data["graph"]))
        meta["arrays"] = {key: data[key] for key in data.files if key != "graph"}
    return meta


def _conv(spikes: np.ndarray, codes: np.ndarray, stride, padding) -> np.ndarray:
    """The exact integer sums of a convolution: ``[B, C, H, W]`` integer spikes, int8 ``[O, C, kh, kw]``."""
    padded = np.pad(spikes.astype(np.int64), ((0, 0), (0, 0), (padding[0],) * 2, (padding[1],) * 2))
    windows = np.lib.stride_tricks.sliding_window_view(padded, codes.shape[2:], axis=(2, 3))
    windows = windows[:, :, ::stride[0], ::stride[1]]  # [B, C, H', W', kh, kw]
    return np.einsum("bchwij,ocij->bohw", windows, codes.astype(np.int64), optimize=True)


def _weights(model: dict, layer: dict):
    arrays, key = model["arrays"], layer["arrays"]
    return arrays[f"{key}.codes"], arrays[f"{key}.scale"], arrays[f"{key}.bias"]


def _synapses(model: dict, layer: dict, spikes: np.ndarray) -> np.ndarray:
    codes, scale, bias = _weights(model, layer)
    if layer["op"] == "conv":
        sums = _conv(spikes, codes, layer["stride"], layer["padding"])
        shape = (1, -1, 1, 1)
    else:
        sums = spikes.astype(np.int64) @ codes.astype(np.int64).T
        shape = (1, -1)
    scaled = sums.astype(np.float32) * scale.reshape(shape)  # exact below 2^24, then one rounding
    return scaled + bias.reshape(shape)  # float32 + float32: one rounding


def _adjust(spikes: np.ndarray) -> np.ndarray:
    """Eq. 3's A: the largest power of two <= |S|, with the sign of S."""
    magnitude = np.abs(spikes).astype(np.int64)
    power = np.where(magnitude > 0, 2 ** np.floor(np.log2(np.maximum(magnitude, 1))).astype(np.int64), 0)
    return (np.sign(spikes) * power).astype(np.float32)


def _fire(layer: dict, v: np.ndarray, negated_buffer: np.ndarray | None, current: np.ndarray):
    v = (v + current).astype(np.float32)
    smax = layer["max_strength"]
    s = np.clip(np.floor(v), -smax if layer["signed"] else 0, smax)
    if layer["signed"]:
        s = np.maximum(s, negated_buffer)
    if smax > 2:
        s = _adjust(s)
    if layer["signed"]:
        negated_buffer = negated_buffer - s
    v = (v - s).astype(np.float32) if layer["reset"] == "subtract" else np.where(s != 0, np.float32(0), v)
    return s.astype(np.float32), v, negated_buffer


def run(model: dict, currents: np.ndarray, steps: int) -> list[np.ndarray]:
    """Simulate ``steps`` steps with the same input current ``currents`` (float32 ``[B, ...]``, the first
    neuron's input) every step; returns every neuron layer's spikes ``[T, B, ...]`` (float32 integers)."""
    state: dict[int, tuple] = {}
    recorded: dict[int, list] = {}
    for _ in range(steps):
        x = currents.astype(np.float32)
        for index, layer in enumerate(model["layers"]):
            if layer["op"] == "if":
                v, negated = state.get(index, (np.full(x.shape, layer["phi"], np.float32),
                                               np.zeros(x.shape, np.float32) if layer["signed"] else None))
                x, v, negated = _fire(layer, v, negated, x)
                state[index] = (v, negated)
                recorded.setdefault(index, []).append(x)
            elif layer["op"] == "flatten":
                x = x.reshape(x.shape[0], -1)
            else:
                x = _synapses(model, layer, x)
    return [np.stack(recorded[index]) for index in sorted(recorded)]


def memory_bytes(model: dict) -> dict[str, int]:
    """Bytes of the spiking part: weights (int8 codes, float32 scale and bias per channel) and state
    (float32 membrane per neuron, int8 -V^b per buffered neuron, at batch 1)."""
    weights = sum(a.nbytes for key, a in model["arrays"].items() if key.startswith("layer"))
    state, shape = 0, tuple(model["input_shape"])
    for layer in model["layers"]:
        if layer["op"] == "if":
            state += int(np.prod(shape)) * (4 + (1 if layer["signed"] else 0))
        elif layer["op"] == "flatten":
            shape = (int(np.prod(shape)),)
        else:
            codes = _weights(model, layer)[0]
            if layer["op"] == "conv":
                out = _conv(np.zeros((1, *shape), np.int8), codes, layer["stride"], layer["padding"])
                shape = out.shape[1:]
            else:
                shape = (codes.shape[0],)
    return {"weights": int(weights), "state": int(state)}


def synaptic_operations(model: dict, spikes: list[np.ndarray]) -> int:
    """Synaptic operations of a run, per sample: for every nonzero spike, the number of weights it meets
    (its fan-out into the next integer layer), summed over steps and layers, divided by the batch."""
    total, neuron = 0, -1
    for layer in model["layers"]:
        if layer["op"] == "if":
            neuron += 1
            continue
        if layer["op"] == "flatten" or neuron < 0:
            continue
        fired = (spikes[neuron] != 0).astype(np.int64)  # [T, B, ...]
        codes = _weights(model, layer)[0]
        if layer["op"] == "conv":
            ones = np.ones((1, *codes.shape[1:]), np.int8)
            reached = _conv(fired.reshape(-1, *fired.shape[2:]), ones, layer["stride"], layer["padding"])
            total += int(reached.sum()) * codes.shape[0]
        else:
            total += int(fired.sum()) * codes.shape[0]
    return total // spikes[0].shape[1]
