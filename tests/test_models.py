import pytest
import torch
import torchvision
from torch import nn

from autoinv.models import MODELS, ModelError, cam_parts, create_model, list_models

SIGNAL_MODELS = ["conv1d", "mlp1d", "circconv1d_teacher", "mlp_maxpool1d", "mlp_linear1d"]
ORBIT_MODELS = ["circconv1d_teacher", "mlp_maxpool1d", "mlp_linear1d", "cnn2d_teacher", "mlp2d_student", "p4cnn"]
NO_CAM = ["mlp", "mlp1d", "vit_small", *ORBIT_MODELS]
ALL = [*list_models(), "tv:resnet18"]  # one torchvision model stands for the tv: path


def _input_shape(name: str) -> tuple[int, ...]:
    # 16x16 keeps the wide nets fast on CPU; 2 channels checks that nothing assumes RGB.
    return (1, 40) if name in SIGNAL_MODELS else (2, 16, 16)


@pytest.mark.parametrize("name", ALL)
def test_forward_and_backward(name):
    torch.manual_seed(0)
    shape = _input_shape(name)
    model = create_model(name, num_classes=7, in_shape=shape)
    x = torch.rand(2, *shape)
    logits = model(x)
    assert logits.shape == (2, 7) and torch.isfinite(logits).all()
    logits.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", [n for n in ALL if n not in NO_CAM])
def test_cam_parts_reproduce_the_logits(name):
    torch.manual_seed(0)
    shape = _input_shape(name)
    model = create_model(name, num_classes=5, in_shape=shape).eval()
    features, head = cam_parts(model)
    x = torch.rand(3, *shape)
    maps = features(x)
    assert isinstance(head, nn.Linear) and maps.shape[:2] == (3, head.in_features) and maps.ndim == len(shape) + 1
    with torch.no_grad():
        assert torch.allclose(head(maps.flatten(2).mean(2)), model(x), atol=1e-5)


@pytest.mark.parametrize("name", NO_CAM)
def test_cam_parts_refuses_models_without_pooled_head(name):
    model = create_model(name, num_classes=5, in_shape=_input_shape(name))
    with pytest.raises(ModelError, match="has no global-pool \\+ linear head.*use e.g. small_cnn"):
        cam_parts(model)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 32, 32), (1, 28, 28)])
def test_small_cnn_on_dataset_shapes(shape):
    model = create_model("small_cnn", num_classes=10, in_shape=shape)
    assert model(torch.rand(4, *shape)).shape == (4, 10)


def test_orbit_networks_check_their_input_kind():
    """The Orbit experiments' networks are registered under their names and refuse the other kind of input."""
    assert set(ORBIT_MODELS) <= set(MODELS)
    assert create_model("mlp_maxpool1d", 10, (1, 40)).fc2.out_features == 400  # K x L, max-pooled over L
    assert create_model("mlp2d_student", 10, (3, 8, 8)).block1[0].in_features == 192
    with pytest.raises(ModelError, match="'circconv1d_teacher' takes signals"):
        create_model("circconv1d_teacher", 10, (1, 8, 8))
    with pytest.raises(ModelError, match="'mlp_linear1d' takes one-channel signals"):
        create_model("mlp_linear1d", 10, (2, 40))
    with pytest.raises(ModelError, match="'p4cnn' takes images"):
        create_model("p4cnn", 10, (1, 40))


def test_mlp_works_on_signals_and_images():
    assert create_model("mlp", 3, (1, 40))(torch.rand(2, 1, 40)).shape == (2, 3)
    assert create_model("mlp", 3, (3, 8, 8))(torch.rand(2, 3, 8, 8)).shape == (2, 3)


def test_unknown_names_and_bad_shapes():
    with pytest.raises(ModelError, match="unknown model 'nope'; known: small_cnn, .*tv:NAME"):
        create_model("nope", 10, (3, 32, 32))
    with pytest.raises(ModelError, match="list_models"):
        create_model("tv:nope", 10, (3, 32, 32))
    with pytest.raises(ModelError, match="takes images"):
        create_model("resnet18", 10, (1, 40))
    with pytest.raises(ModelError, match="takes signals"):
        create_model("conv1d", 10, (3, 32, 32))
    with pytest.raises(ModelError, match="divisible"):
        create_model("vit_small", 10, (3, 30, 30))
    with pytest.raises(ModelError, match="no pretrained weights"):
        create_model("small_cnn", 10, (3, 32, 32), pretrained=True)
    assert list_models() == list(MODELS)


def test_torchvision_pretrained_adapts_head_and_first_conv(monkeypatch):
    # Stand in for the download with weights of a fresh ImageNet-shaped model, so this runs offline.
    reference = torchvision.models.resnet18()
    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", lambda *a, **k: reference.state_dict())
    model = create_model("tv:resnet18", num_classes=4, in_shape=(1, 32, 32), pretrained=True)
    assert model.fc.out_features == 4 and model.conv1.in_channels == 1
    expected = reference.conv1.weight.mean(1, keepdim=True) * 3
    assert torch.allclose(model.conv1.weight, expected)
    assert torch.equal(model.layer1[0].conv1.weight, reference.layer1[0].conv1.weight)
    assert model(torch.rand(2, 1, 32, 32)).shape == (2, 4)


def test_torchvision_pretrained_offline_is_a_model_error(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)
    with pytest.raises(ModelError, match="could not download pretrained weights for tv:resnet18"):
        create_model("tv:resnet18", 10, (3, 32, 32), pretrained=True)
