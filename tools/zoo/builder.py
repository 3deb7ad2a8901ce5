"""Small graph-building helper on top of onnx.helper used by the model zoo.

All weights come from a single seeded numpy Generator, drawn directly as
float32 arrays (no per-element Python loops), so generation is fast and
deterministic for a given (model, tiny) pair.
"""
import contextlib

import numpy as np
import onnx
from onnx import helper, numpy_helper

OPSET = 17
IR_VERSION = 8

# Ops the kiln engine supports; every generated node must be one of these.
ALLOWED_OPS = frozenset("""
Conv ConvTranspose BatchNormalization Gemm MatMul Add Sub Mul Div Pow Sqrt Exp
Log Neg Abs Reciprocal Erf Min Max Clip Relu LeakyRelu PRelu Elu Selu Sigmoid
HardSigmoid HardSwish Tanh Softplus Gelu Softmax LogSoftmax MaxPool AveragePool
GlobalAveragePool GlobalMaxPool LayerNormalization InstanceNormalization Reshape
Flatten Transpose Concat Split Slice Gather GatherElements Squeeze Unsqueeze
Expand Tile Pad Resize Shape Size Constant ConstantOfShape Range Cast Identity
Dropout Where Equal Less Greater LessOrEqual GreaterOrEqual Not And Or
ReduceMean ReduceSum ReduceMax ReduceMin ReduceProd ArgMax TopK CumSum Einsum
""".split())

F32 = np.float32
I64 = np.int64


class Builder:
    """Accumulates nodes / initializers / graph IO and builds a ModelProto.

    Names follow the PyTorch-exporter style: nodes are "/scope/.../OpType"
    (made unique with a suffix) and outputs "<node name>_output_<i>".

    const_nodes: if True, small constants made with const() are emitted as
    Constant nodes (like TorchScript-based PyTorch exports); otherwise they are
    (deduplicated) initializers.
    """

    def __init__(self, name, seed, const_nodes=False):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.const_nodes = const_nodes
        self.nodes, self.inits, self.inputs, self.outputs = [], [], [], []
        self._used = set()
        self._scope = []
        self._const_cache = {}

    # -- naming ---------------------------------------------------------
    @contextlib.contextmanager
    def scope(self, name):
        self._scope.append(str(name))
        try:
            yield
        finally:
            self._scope.pop()

    def _unique(self, base):
        name, i = base, 0
        while name in self._used:
            i += 1
            name = f"{base}_{i}"
        self._used.add(name)
        return name

    def _scoped(self, leaf):
        return "/" + "/".join(self._scope + [leaf]) if self._scope else leaf

    # -- random weights -------------------------------------------------
    def normal(self, shape, std, mean=0.0):
        a = self.rng.standard_normal(shape, dtype=F32)
        a *= F32(std)
        if mean:
            a += F32(mean)
        return a

    def uniform(self, shape, lo, hi):
        a = self.rng.random(shape, dtype=F32)
        a *= F32(hi - lo)
        a += F32(lo)
        return a

    # -- tensors --------------------------------------------------------
    def param(self, leaf, array):
        """Add a named initializer (a model weight) and return its name."""
        name = self._unique(".".join(self._scope + [leaf]) if self._scope else leaf)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def const(self, value, dtype=F32):
        """Small constant (scalar / shape vector) as Constant node or initializer."""
        arr = np.asarray(value, dtype=dtype)
        if self.const_nodes:
            node = self._unique(self._scoped("Constant"))
            out = f"{node}_output_0"
            self.nodes.append(helper.make_node(
                "Constant", [], [out], name=node,
                value=numpy_helper.from_array(arr)))
            return out
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self._const_cache:
            name = self._unique(f"const_{len(self._const_cache)}")
            self.inits.append(numpy_helper.from_array(arr, name))
            self._const_cache[key] = name
        return self._const_cache[key]

    def op(self, op_type, inputs, n_out=1, **attrs):
        assert op_type in ALLOWED_OPS, op_type
        node = self._unique(self._scoped(op_type))
        outs = [f"{node}_output_{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outs, name=node, **attrs))
        return outs[0] if n_out == 1 else outs

    # -- graph IO -------------------------------------------------------
    def input(self, name, elem_type, shape):
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def output(self, value, name, elem_type, shape):
        """Route `value` to a graph output called `name` via an Identity-free rename."""
        # Rename the producing node's output so no extra node is needed.
        for n in self.nodes:
            for i, o in enumerate(n.output):
                if o == value:
                    n.output[i] = name
        for n in self.nodes:
            for i, x in enumerate(n.input):
                if x == value:
                    n.input[i] = name
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def build(self, doc=""):
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs,
                                  initializer=self.inits)
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION, producer_name="kiln.make_zoo",
            producer_version="1", doc_string=doc)
        return model

    # -- common layer helpers -------------------------------------------
    def shape_dim(self, x, i):
        """Shape -> Gather(i) -> Unsqueeze(0): a 1-element int64 tensor with dim i."""
        s = self.op("Shape", [x])
        g = self.op("Gather", [s, self.const(i, I64)], axis=0)
        return self.op("Unsqueeze", [g, self.const([0], I64)])

    def linear(self, x, d_in, d_out, std=None, leaf_w="weight", leaf_b="bias"):
        """MatMul + Add with W stored [d_in, d_out] (like PyTorch exports)."""
        std = (1.0 / np.sqrt(d_in)) if std is None else std
        w = self.param(leaf_w, self.normal((d_in, d_out), std))
        b = self.param(leaf_b, self.normal((d_out,), 0.02))
        return self.op("Add", [self.op("MatMul", [x, w]), b])


def count_params(model: onnx.ModelProto) -> int:
    return int(sum(np.prod(t.dims, dtype=np.int64) for t in model.graph.initializer))


