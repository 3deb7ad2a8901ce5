"""Transformer models: BERT-base encoder, GPT-2 small, ViT-B/16.

Op patterns mimic TorchScript-based PyTorch (HF / torchvision) ONNX exports:
scalar constants are Constant nodes, head split/merge reshapes are built from
Shape -> Gather -> Unsqueeze -> Concat chains (BERT, GPT-2), etc.

Weights are scaled so the residual stream stays O(1): projections use
std = 1/sqrt(fan_in); in the pre-LN models (GPT-2, ViT) the projections that
write into the residual stream are further scaled by 1/sqrt(2 * n_layers).
"""
import math

import numpy as np
from onnx import TensorProto, helper

from .builder import F32, I64, Builder

CONFIGS = {
    "bert_base": {
        False: dict(layers=12, hidden=768, heads=12, seq=128, vocab=30522, ffn=3072,
                    max_pos=512, type_vocab=2),
        True: dict(layers=2, hidden=32, heads=2, seq=16, vocab=100, ffn=128,
                   max_pos=64, type_vocab=2),
    },
    "gpt2": {
        False: dict(layers=12, hidden=768, heads=12, seq=128, vocab=50257, ffn=3072, n_ctx=1024),
        True: dict(layers=2, hidden=32, heads=2, seq=16, vocab=100, ffn=128, n_ctx=32),
    },
    "vit_b16": {
        False: dict(image=224, patch=16, layers=12, hidden=768, heads=12, ffn=3072, classes=1000),
        True: dict(image=32, patch=8, layers=2, hidden=32, heads=2, ffn=128, classes=10),
    },
}


class TB(Builder):
    def __init__(self, name, seed):
        super().__init__(name, seed, const_nodes=True)

    def ln_params(self, d):
        return (self.param("weight", self.uniform((d,), 0.9, 1.1)),
                self.param("bias", self.normal((d,), 0.02)))

    def layernorm_decomposed(self, x, d, eps):
        """ReduceMean, Sub, Pow, ReduceMean, Add eps, Sqrt, Div, Mul, Add."""
        g, b = self.ln_params(d)
        c = self.op("Sub", [x, self.op("ReduceMean", [x], axes=[-1], keepdims=1)])
        v = self.op("ReduceMean", [self.op("Pow", [c, self.const(2.0)])], axes=[-1], keepdims=1)
        s = self.op("Sqrt", [self.op("Add", [v, self.const(eps)])])
        return self.op("Add", [self.op("Mul", [self.op("Div", [c, s]), g]), b])

    def layernorm(self, x, d, eps):
        g, b = self.ln_params(d)
        return self.op("LayerNormalization", [x, g, b], axis=-1, epsilon=eps)

    def gelu_erf(self, x):
        """x * 0.5 * (1 + erf(x / sqrt(2)))"""
        e = self.op("Erf", [self.op("Div", [x, self.const(math.sqrt(2.0))])])
        h = self.op("Mul", [x, self.const(0.5)])
        return self.op("Mul", [h, self.op("Add", [e, self.const(1.0)])])

    def gelu_tanh(self, x):
        """0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))"""
        h = self.op("Mul", [self.const(0.5), x])
        p = self.op("Mul", [self.const(0.044715), self.op("Pow", [x, self.const(3.0)])])
        i = self.op("Mul", [self.const(math.sqrt(2.0 / math.pi)), self.op("Add", [x, p])])
        return self.op("Mul", [h, self.op("Add", [self.const(1.0), self.op("Tanh", [i])])])

    def split_heads(self, x, nh, dh, perm):
        """[B,S,nh*dh] -> Reshape [B,S,nh,dh] (shape from Shape chain) -> Transpose."""
        shape = self.op("Concat", [self.shape_dim(x, 0), self.shape_dim(x, 1),
                                   self.const([nh], I64), self.const([dh], I64)], axis=0)
        return self.op("Transpose", [self.op("Reshape", [x, shape])], perm=perm)

    def merge_heads(self, x, d):
        """[B,nh,S,dh] -> Transpose [B,S,nh,dh] -> Reshape [B,S,d] (Shape chain)."""
        t = self.op("Transpose", [x], perm=[0, 2, 1, 3])
        shape = self.op("Concat", [self.shape_dim(t, 0), self.shape_dim(t, 1),
                                   self.const([d], I64)], axis=0)
        return self.op("Reshape", [t, shape])


def bert_base(cfg, seed):
    b = TB("bert_base", seed)
    H, nh, S, L = cfg["hidden"], cfg["heads"], cfg["seq"], cfg["layers"]
    dh = H // nh
    ids = b.input("input_ids", TensorProto.INT64, ["batch", S])
    mask = b.input("attention_mask", TensorProto.INT64, ["batch", S])

    with b.scope("embeddings"):
        word = b.param("word_embeddings.weight", b.normal((cfg["vocab"], H), 0.02))
        pos = b.param("position_embeddings.weight", b.normal((cfg["max_pos"], H), 0.02))
        typ = b.param("token_type_embeddings.weight", b.normal((cfg["type_vocab"], H), 0.02))
        pos_buf = b.param("position_ids", np.arange(cfg["max_pos"], dtype=I64)[None])
        typ_buf = b.param("token_type_ids", np.zeros((1, cfg["max_pos"]), dtype=I64))
        seq = b.shape_dim(ids, 1)
        pos_ids = b.op("Slice", [pos_buf, b.const([0], I64), seq, b.const([1], I64)])
        typ_ids = b.op("Slice", [typ_buf, b.const([0], I64), seq, b.const([1], I64)])
        e = b.op("Add", [b.op("Gather", [word, ids], axis=0),
                         b.op("Gather", [typ, typ_ids], axis=0)])
        e = b.op("Add", [e, b.op("Gather", [pos, pos_ids], axis=0)])
        with b.scope("LayerNorm"):
            h = b.layernorm_decomposed(e, H, 1e-12)

    # Extended attention mask: (1 - mask[:, None, None, :].float()) * -10000
    m = b.op("Unsqueeze", [b.op("Unsqueeze", [mask, b.const([1], I64)]), b.const([2], I64)])
    m = b.op("Cast", [m], to=TensorProto.FLOAT)
    ext = b.op("Mul", [b.op("Sub", [b.const(1.0), m]), b.const(-10000.0)])

    for li in range(L):
        with b.scope("encoder"), b.scope("layer"), b.scope(str(li)):
            with b.scope("attention"), b.scope("self"):
                with b.scope("query"):
                    q = b.split_heads(b.linear(h, H, H), nh, dh, [0, 2, 1, 3])
                with b.scope("key"):
                    k = b.split_heads(b.linear(h, H, H), nh, dh, [0, 2, 3, 1])
                with b.scope("value"):
                    v = b.split_heads(b.linear(h, H, H), nh, dh, [0, 2, 1, 3])
                s = b.op("Div", [b.op("MatMul", [q, k]), b.const(math.sqrt(dh))])
                p = b.op("Softmax", [b.op("Add", [s, ext])], axis=-1)
                ctx = b.merge_heads(b.op("MatMul", [p, v]), H)
            with b.scope("attention"), b.scope("output"):
                with b.scope("dense"):
                    a = b.linear(ctx, H, H)
                with b.scope("LayerNorm"):
                    h = b.layernorm_decomposed(b.op("Add", [a, h]), H, 1e-12)
            with b.scope("intermediate"), b.scope("dense"):
                i = b.gelu_erf(b.linear(h, H, cfg["ffn"]))
            with b.scope("output"):
                with b.scope("dense"):
                    o = b.linear(i, cfg["ffn"], H)
                with b.scope("LayerNorm"):
                    h = b.layernorm_decomposed(b.op("Add", [o, h]), H, 1e-12)
    b.output(h, "last_hidden_state", TensorProto.FLOAT, ["batch", S, H])
    return b.build("BERT-base encoder (HF export op pattern), random weights")


def gpt2(cfg, seed):
    b = TB("gpt2", seed)
    H, nh, S, L, V = cfg["hidden"], cfg["heads"], cfg["seq"], cfg["layers"], cfg["vocab"]
    dh, out_std = H // nh, 1.0 / math.sqrt(2 * L)
    ids = b.input("input_ids", TensorProto.INT64, ["batch", S])
    with b.scope("transformer"):
        wte = b.param("wte.weight", b.normal((V, H), 0.02))
        wpe = b.param("wpe.weight", b.normal((cfg["n_ctx"], H), 0.01))
        n = cfg["n_ctx"]
        causal = b.param("attn_bias", np.tril(np.ones((n, n), dtype=bool))[None, None])
        seq = b.op("Gather", [b.op("Shape", [ids]), b.const(1, I64)], axis=0)  # scalar
        pos = b.op("Range", [b.const(0, I64), seq, b.const(1, I64)])
        pos = b.op("Unsqueeze", [pos, b.const([0], I64)])
        h = b.op("Add", [b.op("Gather", [wte, ids], axis=0),
                         b.op("Gather", [wpe, pos], axis=0)])
        for li in range(L):
            with b.scope("h"), b.scope(str(li)):
                with b.scope("ln_1"):
                    a = b.layernorm(h, H, 1e-5)
                with b.scope("attn"):
                    with b.scope("c_attn"):
                        qkv = b.linear(a, H, 3 * H)
                    q, k, v = b.op("Split", [qkv, b.const([H, H, H], I64)], n_out=3, axis=2)
                    q = b.split_heads(q, nh, dh, [0, 2, 1, 3])
                    k = b.split_heads(k, nh, dh, [0, 2, 3, 1])
                    v = b.split_heads(v, nh, dh, [0, 2, 1, 3])
                    w = b.op("Div", [b.op("MatMul", [q, k]), b.const(math.sqrt(dh))])
                    ends = b.op("Concat", [b.shape_dim(w, 2), b.shape_dim(w, 3)], axis=0)
                    cm = b.op("Slice", [causal, b.const([0, 0], I64), ends, b.const([2, 3], I64)])
                    w = b.op("Where", [cm, w, b.const(np.finfo(F32).min)])
                    p = b.op("Softmax", [w], axis=-1)
                    o = b.merge_heads(b.op("MatMul", [p, v]), H)
                    with b.scope("c_proj"):
                        o = b.linear(o, H, H, std=out_std / math.sqrt(H))
                h = b.op("Add", [o, h])
                with b.scope("ln_2"):
                    a = b.layernorm(h, H, 1e-5)
                with b.scope("mlp"):
                    with b.scope("c_fc"):
                        m = b.gelu_tanh(b.linear(a, H, cfg["ffn"]))
                    with b.scope("c_proj"):
                        m = b.linear(m, cfg["ffn"], H, std=out_std / math.sqrt(cfg["ffn"]))
                h = b.op("Add", [h, m])
        with b.scope("ln_f"):
            h = b.layernorm(h, H, 1e-5)
    with b.scope("lm_head"):  # tied weights: logits = h @ wte^T
        logits = b.op("MatMul", [h, b.op("Transpose", [wte], perm=[1, 0])])
    b.output(logits, "logits", TensorProto.FLOAT, ["batch", S, V])
    return b.build("GPT-2 small (HF export op pattern), random weights")


def vit_b16(cfg, seed):
    b = TB("vit_b16", seed)
    H, nh, L, P, I = cfg["hidden"], cfg["heads"], cfg["layers"], cfg["patch"], cfg["image"]
    dh, T, out_std = H // nh, (I // P) ** 2 + 1, 1.0 / math.sqrt(2 * L)
    b.inputs.append(helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, I, I]))
    with b.scope("conv_proj"):
        w = b.param("weight", b.normal((H, 3, P, P), 1.0 / math.sqrt(3 * P * P)))
        x = b.op("Conv", ["input", w, b.param("bias", b.normal((H,), 0.02))],
                 kernel_shape=[P, P], strides=[P, P], pads=[0, 0, 0, 0], dilations=[1, 1], group=1)
    n = b.shape_dim(x, 0)
    x = b.op("Reshape", [x, b.op("Concat", [n, b.const([H, -1], I64)], axis=0)])
    x = b.op("Transpose", [x], perm=[0, 2, 1])  # [B, T-1, H]
    cls = b.param("class_token", b.normal((1, 1, H), 0.02))
    cls = b.op("Expand", [cls, b.op("Concat", [n, b.const([1, 1], I64)], axis=0)])
    x = b.op("Concat", [cls, x], axis=1)
    with b.scope("encoder"):
        x = b.op("Add", [x, b.param("pos_embedding", b.normal((1, T, H), 0.02))])
        for li in range(L):
            with b.scope("layers"), b.scope(f"encoder_layer_{li}"):
                with b.scope("ln_1"):
                    y = b.layernorm(x, H, 1e-6)
                with b.scope("self_attention"):
                    heads = []
                    for nm, perm in (("q", [0, 2, 1, 3]), ("k", [0, 2, 3, 1]), ("v", [0, 2, 1, 3])):
                        with b.scope(nm):
                            t = b.op("Reshape", [b.linear(y, H, H), b.const([0, 0, nh, dh], I64)])
                            heads.append(b.op("Transpose", [t], perm=perm))
                    q, k, v = heads
                    s = b.op("Mul", [b.op("MatMul", [q, k]), b.const(1.0 / math.sqrt(dh))])
                    p = b.op("Softmax", [s], axis=-1)
                    o = b.op("Transpose", [b.op("MatMul", [p, v])], perm=[0, 2, 1, 3])
                    o = b.op("Reshape", [o, b.const([0, 0, H], I64)])
                    with b.scope("out_proj"):
                        o = b.linear(o, H, H, std=out_std / math.sqrt(H))
                x = b.op("Add", [o, x])
                with b.scope("ln_2"):
                    y = b.layernorm(x, H, 1e-6)
                with b.scope("mlp"):
                    with b.scope("0"):
                        y = b.gelu_erf(b.linear(y, H, cfg["ffn"]))
                    with b.scope("3"):
                        y = b.linear(y, cfg["ffn"], H, std=out_std / math.sqrt(cfg["ffn"]))
                x = b.op("Add", [x, y])
        with b.scope("ln"):
            x = b.layernorm(x, H, 1e-6)
    x = b.op("Gather", [x, b.const(0, I64)], axis=1)  # class token -> [B, H]
    with b.scope("heads"), b.scope("head"):
        w = b.param("weight", b.normal((cfg["classes"], H), 1.0 / math.sqrt(H)))
        bias = b.param("bias", b.normal((cfg["classes"],), 0.02))
        x = b.op("Gemm", [x, w, bias], alpha=1.0, beta=1.0, transB=1)
    b.output(x, "output", TensorProto.FLOAT, ["batch", cfg["classes"]])
    return b.build("ViT-B/16 (torchvision layout), random weights")


BUILDERS = {"bert_base": bert_base, "gpt2": gpt2, "vit_b16": vit_b16}
