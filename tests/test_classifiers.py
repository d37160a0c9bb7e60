"""Pretrained classifiers for feature inversion and activation maximisation, with real weights."""

import io
import os
import pickle

import numpy as np
import pytest
import torch
from skimage import data
from skimage.transform import resize

import dip.tasks as T
from dip import weights
from dip.callbacks import LossHistory
from dip.errors import DipError
from dip.nets.classifiers import VGG16, AlexNet, MobileNetV2, normalize


@pytest.fixture(scope="module")
def installed():
    """The cached weights; CI installs them first (make test), elsewhere a missing cache skips."""
    entries = weights.installed()
    if set(entries) != {"alexnet", "vgg16", "mobilenet_v2"}:
        if os.environ.get("CI"):
            pytest.fail("classifier weights are not installed: `dip weights install` must run before the tests")
        pytest.skip("classifier weights not installed (run `dip weights install`)")
    return entries


def chelsea_224():
    return torch.from_numpy(resize(data.chelsea(), (224, 224), anti_aliasing=True).astype(np.float32)).permute(2, 0, 1)[
        None
    ]


def test_mobilenet_v2_sees_a_cat(installed):
    net = weights.load_classifier("mobilenet_v2")
    with torch.no_grad():
        top = net(normalize(chelsea_224())).softmax(1)[0].topk(3)
    assert 281 <= int(top.indices[0]) <= 285  # ImageNet's domestic cats (tabby ... Egyptian cat)
    assert float(top.values[0]) > 0.5


def test_alexnet_and_vgg_features_are_those_of_a_trained_net(installed):
    # trained first-layer filters respond far more to a photo than to its pixels shuffled
    photo = normalize(chelsea_224())
    shuffled = photo.flatten(2)[:, :, torch.randperm(224 * 224, generator=torch.Generator().manual_seed(0))].view_as(
        photo
    )
    for name, layer in (("alexnet", "conv5"), ("vgg16", "conv5_3")):
        net = weights.load_classifier(name)
        with torch.no_grad():
            assert net(photo, layer).shape[1] == (256 if name == "alexnet" else 512)
            # structure, not colour statistics, drives deep features
            assert not torch.allclose(net(photo, layer), net(shuffled, layer), atol=1e-2)


def test_torchvision_format_checkpoint_loads(installed, tmp_path):
    state = weights.load_state("mobilenet_v2")
    torch.save(state, tmp_path / "mine.pth")
    net = weights.load_classifier("mobilenet_v2", tmp_path / "mine.pth")
    reference = weights.load_classifier("mobilenet_v2")
    x = normalize(chelsea_224())
    with torch.no_grad():
        assert torch.equal(net(x), reference(x))


def test_bad_weights_are_refused(tmp_path, monkeypatch):
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(DipError, match="cannot read weights"):
        weights.load_classifier("alexnet", tmp_path / "junk.pth")
    torch.save({"features.0.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(DipError, match="do not fit|size mismatch"):
        weights.load_classifier("alexnet", tmp_path / "wrong.pth")
    monkeypatch.setenv("DIP_CACHE", str(tmp_path / "empty"))
    with pytest.raises(DipError, match="dip weights install"):
        weights.load_classifier("vgg16")


def test_weight_pickles_may_hold_numpy_arrays_only():
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        weights._NumpyOnly(io.BytesIO(pickle.dumps({"a": Evil()}))).load()
    arrays = {"k": np.arange(3, dtype=np.float32)}
    assert np.array_equal(weights._NumpyOnly(io.BytesIO(pickle.dumps(arrays))).load()["k"], arrays["k"])


def test_layer_names():
    assert AlexNet.layers["conv5"] == 11
    assert VGG16.layers["conv5_3"] == 29
    assert MobileNetV2().layers["logits"] == 19


def test_feature_inversion_matches_features(installed):
    history = LossHistory()
    out = T.invert(data.chelsea(), "alexnet", "conv3", steps=25, device="cpu", callbacks=[history])
    assert out.shape == (224, 224, 3)
    assert history.history[-1][1] < 0.6 * history.history[0][1]


def test_activation_maximisation_raises_the_class_logit(installed):
    history = LossHistory()
    out = T.visualize("mobilenet_v2", "logits", 285, steps=30, device="cpu", callbacks=[history])
    assert out.shape == (224, 224, 3)
    logits = [-loss for _, loss in history.history]  # noisy step to step: the input is re-perturbed
    assert sum(logits[-5:]) / 5 > logits[0] + 4  # the logit rose by more than 4


def test_unknown_layer_or_unit(installed):
    with pytest.raises(DipError, match="unknown layer"):
        T.visualize("alexnet", "fc8", 1, steps=1)
    with pytest.raises(DipError, match="out of range"):
        T.visualize("alexnet", "conv5", 999, steps=1)
