"""Nets outside the registry, named `package.module:function` (tfmodels.nets.custom).

The guide's custom net (docs/examples/convnet.py, the TF2 twin of legacy_convnet.py) resolves
through `nets.get_net`, builds through `nets.build_model` with the same variables as the TF1
graph, and every way a `model` value can be wrong gives one error naming it and what is
expected, before anything is built. The porting CLI takes such a value too.
"""
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tests import scripts, slim_reference
from tfmodels import nets

pytestmark = pytest.mark.filterwarnings("ignore:`(layer.apply|tf.layers.flatten)`:UserWarning")

EXAMPLES = f"{scripts.ROOT}/docs/examples"


@pytest.fixture(autouse=True)
def examples_on_path(monkeypatch, tmp_path):
    """docs/examples and a scratch directory for broken modules on sys.path."""
    monkeypatch.syspath_prepend(EXAMPLES)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for name in [n for n in sys.modules if n.startswith(("convnet", "bad_net"))]:
        del sys.modules[name]


def write_module(directory, name, code):
    (directory / f"{name}.py").write_text(textwrap.dedent(code))
    return f"{name}"


def test_get_net_reads_the_function_its_arg_scope_and_sizes():
    spec = nets.get_net("convnet:convnet")
    import convnet

    assert spec.fn is convnet.convnet and spec.name == "convnet:convnet"
    assert spec.scope == "ConvNet" and spec.default_image_size == 16
    assert spec.image_size_limits() == (1, None)
    got, want = spec.arg_scope(weight_decay=0.5), convnet.convnet_arg_scope(weight_decay=0.5)
    assert {op: sorted(args) for op, args in got.items()} == {
        op: sorted(args) for op, args in want.items()}
    for op, args in got.items():
        for name, value in args.items():
            same = (value.get_config() == want[op][name].get_config()
                    if hasattr(value, "get_config") else value == want[op][name])
            assert same, (op, name)


def test_build_model_has_the_legacy_graphs_variables():
    """Same names and shapes as legacy_convnet.convnet's TF1 graph (BatchNorm with gamma,
    slim.repeat, '/' in a scope, one leaf name under several scopes)."""
    import legacy_convnet

    def legacy(images):
        with legacy_convnet.slim.arg_scope(legacy_convnet.convnet_arg_scope()):
            return legacy_convnet.convnet(images, 10)

    expected = {name: shape for name, shape in slim_reference.graph_variables(
        legacy, (16, 16, 3)).items()}
    model = nets.build_model("convnet:convnet", 10, (16, 16, 3), weight_decay=1e-3)
    assert slim_reference.keras_variables(model) == expected
    assert "ConvNet/block2/conv/conv_2/BatchNorm/gamma" in expected
    assert model.name == "ConvNet" and model.output["embedding"].shape[-1] == 64
    kernels = [v for v in model.weights if v.path.endswith("/kernel")]
    np.testing.assert_allclose(  # weight decay from the module's own arg scope
        float(tf.add_n(model.losses)),
        sum(1e-3 * np.sum(k.numpy().astype(np.float64) ** 2) / 2 for k in kernels), rtol=1e-5)


@pytest.mark.parametrize("value, match", [
    ("convnet", "unknown --model=convnet; valid names: .*'package.module:function'"),
    ("convnet:", r"--model=convnet: must be a registered net name or 'package.module:function'"),
    ("my-pkg.net:fn", "must be a registered net name or 'package.module:function'"),
    ("no_such_module_x:fn", r"--model=no_such_module_x:fn: no module named 'no_such_module_x' "
                            "on sys.path; run from the directory holding it or add"),
    ("convnet:resnet", r"--model=convnet:resnet: module convnet has no attribute 'resnet'; "
                       "its functions: convnet, convnet_arg_scope"),
])
def test_bad_model_values(value, match):
    with pytest.raises(ValueError, match=match):
        nets.get_net(value)


def test_modules_that_break_the_contract(tmp_path):
    write_module(tmp_path, "bad_net_a", """
        LIMIT = 3
        def no_scope(images, num_classes):
            return images, {}
        def no_embedding(images, num_classes=3, is_training=None, scope="Net"):
            import keras
            with keras.name_scope(scope):
                logits = keras.layers.Dense(num_classes, name="fc")(keras.layers.Flatten()(images))
            return logits, {"logits": logits}
        def one_output(images, num_classes=3, is_training=None, scope="Net"):
            return images
        def sized(images, num_classes=3, is_training=None, scope="Net"):
            return images, {}
        sized.default_image_size = 0
        def scoped(images, num_classes=3, is_training=None, scope="Net"):
            return images, {}
        def scoped_arg_scope():
            return {}
    """)
    with pytest.raises(ValueError, match=r"--model=bad_net_a:LIMIT: bad_net_a.LIMIT is a int, "
                                         "not a function"):
        nets.get_net("bad_net_a:LIMIT")
    with pytest.raises(ValueError, match=r"--model=bad_net_a:no_scope does not follow the net "
                                         r"contract fn\(images, num_classes, is_training=None, "
                                         r".*no 'is_training' parameter; no 'scope' parameter"):
        nets.get_net("bad_net_a:no_scope")
    with pytest.raises(ValueError, match=r"sized.default_image_size=0 must be an int >= 1"):
        nets.get_net("bad_net_a:sized")
    with pytest.raises(ValueError, match=r"end_points has no 'embedding' .* set "
                                         r"end_points\['embedding'\] = net before the logits"):
        nets.build_model("bad_net_a:no_embedding", 3, (4, 4, 1))
    with pytest.raises(ValueError, match=r"returned KerasTensor; the net contract is to return "
                                         r"\(logits, end_points\)"):
        nets.build_model("bad_net_a:one_output", 3, (4, 4, 1))
    with pytest.raises(ValueError, match=r"--weight_decay=0.1 but --model=bad_net_a:scoped: "
                                         "scoped_arg_scope takes no weight_decay argument"):
        nets.build_model("bad_net_a:scoped", 3, (4, 4, 1), weight_decay=0.1)


def test_tf1_module_is_refused_before_it_switches_graph_mode(tmp_path):
    """A legacy module switching TF1 graph mode on when imported must not break this process:
    it is the --verify_with reference, never the model."""
    write_module(tmp_path, "bad_net_tf1", """
        import tensorflow as tf
        tf.compat.v1.disable_v2_behavior()
        def net(images, num_classes=10, is_training=False, scope="Net"):
            return images, {}
    """)
    with pytest.raises(ValueError, match=r"importing bad_net_tf1 calls tf.compat.v1.disable_v2"
                                         r"_behavior\(\) \(TF1 code\).*--verify_with"):
        nets.get_net("bad_net_tf1:net")
    assert tf.executing_eagerly()
    model = nets.build_model("lenet", 10, (28, 28, 1))  # this process still builds models
    assert model(np.zeros((1, 28, 28, 1), np.float32))["logits"].shape == (1, 10)


def test_tf1_function_as_model_says_what_to_do(tmp_path):
    write_module(tmp_path, "bad_net_slim", """
        import tf_slim as slim
        def net(images, num_classes=10, is_training=False, scope="Net"):
            return slim.conv2d(images, num_classes, 3, scope="conv"), {}
    """)
    with pytest.raises(ValueError, match=r"failed on a Keras input .*Is it TF1 / tf-slim code\?"):
        nets.build_model("bad_net_slim:net", 10, (8, 8, 1))


@pytest.mark.subprocess
def test_porting_cli_model_values(tmp_path):
    """One error line, exit status 2, no flag listing; a net without default_image_size
    needs --image_size."""
    write_module(tmp_path, "bad_net_cli", """
        from tfmodels.nets import lenet
        def net(images, num_classes=10, is_training=None, scope="LeNet"):
            return lenet.lenet(images, num_classes, is_training, scope=scope)
    """)
    for model, message in [
            ("lenet5", "error: unknown --model=lenet5; valid names: "),
            ("bad_net_cli:net", "error: --image_size is required: --model=bad_net_cli:net has "
                                "no default_image_size")]:
        result = subprocess.run(
            [sys.executable, "-m", "tfmodels.porting", "--checkpoint=x", f"--model={model}",
             "--num_classes=10", "--output=out"], cwd=tmp_path, capture_output=True, text=True,
            timeout=300, env=scripts.script_env(PYTHONPATH=scripts.ROOT))
        assert result.returncode == 2
        assert message in result.stderr
        assert "--checkpoint" not in result.stderr  # no usage text
