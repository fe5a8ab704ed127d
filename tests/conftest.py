"""Shared fixtures: a hand-built model whose output is known, and test audio."""

import numpy as np
import pytest

from speechlstm.model import ModelConfig, save_model

SR = 16000
BURSTS = [(0.30, 0.60), (1.00, 1.25), (1.70, 2.10)]  # seconds: noise bursts, silence in between
DURATION = 2.5


def burst_weights(cfg):
    """Weights that make the network say 'a' during loud frames and ' ' during quiet ones.

    One layer, hidden size H: input gate and output gate saturated open, forget gate shut, recurrent weights zero, so
    h_t = tanh(tanh(0.5 * sum(x_t))) with x_t the per-utterance normalized log-mel frame: about +0.76 for loud frames
    and -0.76 for quiet ones, in both directions. The output layer maps that sign to 'a' or space.
    """
    H = cfg.architecture.hidden_size
    D = cfg.features.dim
    V = cfg.num_outputs
    w = {}
    for d in ("fw", "bw"):
        w_ih = np.zeros((4 * H, D), np.float32)
        w_ih[2 * H:3 * H] = 0.5  # g gate reads the frame's loudness
        bias = np.zeros(4 * H, np.float32)
        bias[0:H] = 20.0  # i open
        bias[H:2 * H] = -20.0  # f shut
        bias[3 * H:4 * H] = 20.0  # o open
        w[f"lstm.0.{d}.w_ih"] = w_ih
        w[f"lstm.0.{d}.w_hh"] = np.zeros((4 * H, H), np.float32)
        w[f"lstm.0.{d}.bias"] = bias
    out = np.zeros((V, 2 * H), np.float32)
    a, space = cfg.tokens.index("a"), cfg.tokens.index(" ")
    out[a] = 10.0
    out[space] = -10.0
    w["output.weight"] = out
    w["output.bias"] = np.zeros(V, np.float32)
    return w


def burst_audio(sr=SR, seed=0):
    """Three noise bursts in near-silence: the burst model transcribes it as 'a a a'."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(int(DURATION * sr)).astype(np.float32) * 1e-4
    for s, e in BURSTS:
        x[int(s * sr):int(e * sr)] += rng.standard_normal(int(e * sr) - int(s * sr)).astype(np.float32) * 0.3
    return x


@pytest.fixture(scope="session")
def burst_model_dir(tmp_path_factory):
    cfg = ModelConfig.example(hidden_size=4, num_layers=1)
    cfg.name = "burst-test"
    d = tmp_path_factory.mktemp("burst_model")
    save_model(d, cfg, burst_weights(cfg), card="# burst-test\n\nHand-set weights for tests: says 'a' per noise burst.\n")
    return d


@pytest.fixture(scope="session")
def burst_wav(tmp_path_factory):
    import soundfile as sf

    p = tmp_path_factory.mktemp("audio") / "bursts.wav"
    sf.write(p, burst_audio(), SR, subtype="PCM_16")
    return p
