"""CNN models: ResNet-50, MobileNetV2, EfficientNet-B0 (torchvision layouts).

BatchNormalization stays as separate nodes (eval-mode export without folding).

BN running statistics are *calibrated*: while the graph is built, a small
batch of N(0,1) images is pushed through the network in numpy (the same
computation the ONNX graph performs), and each BN's running mean / var are set
to the per-channel statistics of its actual input, as in a trained network.
So every BN output is ~N(beta, gamma^2) per channel and activations stay O(1)
through the whole stack, whatever the depth.
"""
from typing import NamedTuple

import numpy as np
from onnx import TensorProto, helper

from .builder import F32, Builder

CONFIGS = {
    "resnet50": {
        False: dict(image=224, classes=1000, base=64, blocks=[3, 4, 6, 3]),
        True: dict(image=32, classes=10, base=8, blocks=[1, 1, 1, 1]),
    },
    "mobilenetv2": {
        # (expand t, out c, repeats n, stride s)
        False: dict(image=224, classes=1000, stem=32, last=1280,
                    settings=[(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                              (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]),
        True: dict(image=32, classes=10, stem=8, last=64,
                   settings=[(1, 8, 1, 1), (6, 12, 2, 2), (6, 16, 2, 2), (6, 24, 1, 1)]),
    },
    "efficientnet_b0": {
        # (expand ratio, kernel, stride, out c, repeats)
        False: dict(image=224, classes=1000, stem=32, last=1280,
                    settings=[(1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2),
                              (6, 3, 2, 80, 3), (6, 5, 1, 112, 3), (6, 5, 2, 192, 4),
                              (6, 3, 1, 320, 1)]),
        True: dict(image=32, classes=10, stem=8, last=64,
                   settings=[(1, 3, 1, 8, 1), (6, 3, 2, 12, 2), (6, 5, 2, 16, 1),
                             (6, 3, 1, 24, 1)]),
    },
}
# Calibration batch: 2 images at 224x224, 16 at 32x32 (enough samples per channel
# even where the spatial size is 1x1).
def _calib_batch(image):
    return max(2, 16384 // (image * image))


class T(NamedTuple):
    """A graph value: its tensor name and its numpy value on the calibration batch."""
    name: str
    val: np.ndarray


def _sigmoid(x):
    return (1.0 / (1.0 + np.exp(-x))).astype(F32)


def _windows(xp, k, stride, ho, wo):
    """Yield (i, j, strided [N,C,Ho,Wo] view) for each kernel tap of padded input."""
    for i in range(k):
        for j in range(k):
            yield i, j, xp[:, :, i:i + stride * (ho - 1) + 1:stride, j:j + stride * (wo - 1) + 1:stride]


def conv_np(x, w, b, stride, pad, groups):
    n, c, h, wd = x.shape
    co, _, k, _ = w.shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad))) if pad else x
    if groups == 1:
        y = np.zeros((co, n * ho * wo), F32)
        for i, j, xs in _windows(xp, k, stride, ho, wo):
            y += w[:, :, i, j] @ xs.transpose(1, 0, 2, 3).reshape(c, -1)
        y = y.reshape(co, n, ho, wo).transpose(1, 0, 2, 3)
    else:
        assert groups == c == co, "only depthwise grouped convs are used"
        y = np.zeros((n, co, ho, wo), F32)
        for i, j, xs in _windows(xp, k, stride, ho, wo):
            y += xs * w[None, :, 0, i, j, None, None]
    if b is not None:
        y = y + b[None, :, None, None]
    return np.ascontiguousarray(y, dtype=F32)


class CNN(Builder):
    def unary(self, op, x, fn, *extra):
        return T(self.op(op, [x.name, *extra]), fn(x.val).astype(F32))

    def relu(self, x):
        return self.unary("Relu", x, lambda v: np.maximum(v, 0))

    def relu6(self, x):  # ReLU6 as Clip with min/max initializer inputs
        return self.unary("Clip", x, lambda v: np.clip(v, 0, 6), self.const(0.0), self.const(6.0))

    def sigmoid(self, x):
        return self.unary("Sigmoid", x, _sigmoid)

    def silu(self, x):  # SiLU as x * Sigmoid(x)
        return self.mul(x, self.sigmoid(x))

    def add(self, a, b):
        return T(self.op("Add", [a.name, b.name]), a.val + b.val)

    def mul(self, a, b):
        return T(self.op("Mul", [a.name, b.name]), a.val * b.val)

    def gap(self, x):
        return T(self.op("GlobalAveragePool", [x.name]), x.val.mean(axis=(2, 3), keepdims=True))

    def maxpool(self, x, k=3, s=2, p=1):
        n, c, h, w = x.val.shape
        ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
        xp = np.pad(x.val, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=-np.inf)
        y = np.full((n, c, ho, wo), -np.inf, F32)
        for _, _, xs in _windows(xp, k, s, ho, wo):
            np.maximum(y, xs, out=y)
        return T(self.op("MaxPool", [x.name], kernel_shape=[k, k], strides=[s, s],
                         pads=[p, p, p, p]), y)

    def conv(self, x, cout, k, stride=1, groups=1, bias=False, std=None):
        """Conv with He-normal weights (pads k//2)."""
        cin = x.val.shape[1]
        fan_in = cin // groups * k * k
        std = np.sqrt(2.0 / fan_in) if std is None else std
        w = self.normal((cout, cin // groups, k, k), std)
        bv = self.normal((cout,), 0.02) if bias else None
        inputs = [x.name, self.param("weight", w)] + ([self.param("bias", bv)] if bias else [])
        p = k // 2
        y = self.op("Conv", inputs, kernel_shape=[k, k], strides=[stride, stride],
                    pads=[p, p, p, p], dilations=[1, 1], group=groups)
        return T(y, conv_np(x.val, w, bv, stride, p, groups))

    def bn(self, x, gamma=(0.8, 1.2), eps=1e-5):
        """BatchNormalization with running stats calibrated on the input's actual values."""
        c = x.val.shape[1]
        mean = x.val.mean(axis=(0, 2, 3), dtype=np.float64).astype(F32)
        var = x.val.var(axis=(0, 2, 3), dtype=np.float64).astype(F32) + F32(1e-4)
        scale, shift = self.uniform((c,), *gamma), self.normal((c,), 0.05)
        inputs = [x.name, self.param("weight", scale), self.param("bias", shift),
                  self.param("running_mean", mean), self.param("running_var", var)]
        y = self.op("BatchNormalization", inputs, epsilon=eps, momentum=0.9)
        inv = scale / np.sqrt(var + F32(eps))
        yv = (x.val - mean[None, :, None, None]) * inv[None, :, None, None] + shift[None, :, None, None]
        return T(y, yv.astype(F32))

    def conv_bn(self, x, cout, k, stride=1, groups=1, act=None, gamma=(0.8, 1.2)):
        with self.scope("conv"):
            y = self.conv(x, cout, k, stride, groups)
        with self.scope("bn"):
            y = self.bn(y, gamma)
        return {None: lambda v: v, "relu": self.relu, "relu6": self.relu6, "silu": self.silu}[act](y)

    def start(self, cfg):
        s = cfg["image"]
        self.inputs.append(helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, s, s]))
        return T("input", self.normal((_calib_batch(s), 3, s, s), 1.0))

    def finish(self, x, cfg, doc, flatten="Flatten"):
        c = x.val.shape[1]
        x = self.op("GlobalAveragePool", [x.name])
        if flatten == "Flatten":
            x = self.op("Flatten", [x], axis=1)
        else:
            x = self.op("Reshape", [x, self.const([0, -1], np.int64)])
        with self.scope("fc"):
            w = self.param("weight", self.normal((cfg["classes"], c), 1.0 / np.sqrt(c)))
            b = self.param("bias", self.normal((cfg["classes"],), 0.02))
            x = self.op("Gemm", [x, w, b], alpha=1.0, beta=1.0, transB=1)
        self.output(x, "output", TensorProto.FLOAT, ["batch", cfg["classes"]])
        return self.build(doc)


def resnet50(cfg, seed):
    b = CNN("resnet50", seed)
    x = b.start(cfg)
    with b.scope("conv1"):
        x = b.conv(x, cfg["base"], 7, stride=2)
    with b.scope("bn1"):
        x = b.relu(b.bn(x))
    x = b.maxpool(x)
    for li, n in enumerate(cfg["blocks"]):
        width = cfg["base"] * 2 ** li
        for bi in range(n):
            stride = 2 if (bi == 0 and li > 0) else 1
            with b.scope(f"layer{li + 1}"), b.scope(str(bi)):
                with b.scope("1"):
                    h = b.conv_bn(x, width, 1, act="relu")
                with b.scope("2"):
                    h = b.conv_bn(h, width, 3, stride, act="relu")
                with b.scope("3"):  # small last-BN gamma, as in trained ResNets
                    h = b.conv_bn(h, width * 4, 1, gamma=(0.2, 0.5))
                if bi == 0:
                    with b.scope("downsample"):
                        x = b.conv_bn(x, width * 4, 1, stride)
                x = b.relu(b.add(h, x))
    return b.finish(x, cfg, "ResNet-50 (torchvision v1.5 layout), random weights")


def mobilenetv2(cfg, seed):
    b = CNN("mobilenetv2", seed)
    x = b.start(cfg)
    with b.scope("features"), b.scope("0"):
        x = b.conv_bn(x, cfg["stem"], 3, 2, act="relu6")
    idx = 1
    for t, c, n, s in cfg["settings"]:
        for i in range(n):
            stride, cin = (s if i == 0 else 1), x.val.shape[1]
            with b.scope("features"), b.scope(str(idx)):
                h = x
                if t != 1:
                    with b.scope("expand"):
                        h = b.conv_bn(h, cin * t, 1, act="relu6")
                with b.scope("dw"):
                    h = b.conv_bn(h, cin * t, 3, stride, groups=cin * t, act="relu6")
                with b.scope("project"):
                    h = b.conv_bn(h, c, 1)
                x = b.add(x, h) if (stride == 1 and cin == c) else h
            idx += 1
    with b.scope("features"), b.scope(str(idx)):
        x = b.conv_bn(x, cfg["last"], 1, act="relu6")
    return b.finish(x, cfg, "MobileNetV2 (torchvision layout), random weights", "Reshape")


def efficientnet_b0(cfg, seed):
    b = CNN("efficientnet_b0", seed)
    x = b.start(cfg)
    with b.scope("stem"):
        x = b.conv_bn(x, cfg["stem"], 3, 2, act="silu")
    idx = 0
    for e, k, s, c, n in cfg["settings"]:
        for i in range(n):
            stride, cin = (s if i == 0 else 1), x.val.shape[1]
            hidden = cin * e
            with b.scope("blocks"), b.scope(str(idx)):
                h = x
                if e != 1:
                    with b.scope("expand"):
                        h = b.conv_bn(h, hidden, 1, act="silu")
                with b.scope("dw"):
                    h = b.conv_bn(h, hidden, k, stride, groups=hidden, act="silu")
                with b.scope("se"):  # GAP -> Conv1x1 -> SiLU -> Conv1x1 -> Sigmoid -> Mul
                    g = b.gap(h)
                    with b.scope("reduce"):
                        g = b.silu(b.conv(g, max(1, cin // 4), 1, bias=True))
                    with b.scope("expand"):
                        g = b.sigmoid(b.conv(g, hidden, 1, bias=True))
                    h = b.mul(h, g)
                with b.scope("project"):
                    h = b.conv_bn(h, c, 1)
                x = b.add(h, x) if (stride == 1 and cin == c) else h
            idx += 1
    with b.scope("head"):
        x = b.conv_bn(x, cfg["last"], 1, act="silu")
    return b.finish(x, cfg, "EfficientNet-B0-like (torchvision layout), random weights")


BUILDERS = {"resnet50": resnet50, "mobilenetv2": mobilenetv2,
            "efficientnet_b0": efficientnet_b0}
