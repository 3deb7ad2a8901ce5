"""Exports small versions of the GPU benchmark's PyTorch models (same exporter and opset as gpu_bench.py) to ONNX,
so exporter output can be checked on a machine without torch: python bench/gpu/export_small.py OUT_DIR."""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_bench import hf_wrapper  # noqa: E402


def small_models():
    import torchvision
    from transformers import BertConfig, BertModel, GPT2Config, GPT2Model
    vit = torchvision.models.VisionTransformer(image_size=32, patch_size=16, num_layers=2, num_heads=2,
                                               hidden_dim=32, mlp_dim=64, num_classes=10).eval()
    yield "vit_small", vit, (torch.randn(1, 3, 32, 32),), ["input"]
    # the exporter bakes the batch into the attention's Reshape shapes: batch 2 is a model of its own
    yield "vit_small_b2", vit, (torch.randn(2, 3, 32, 32),), ["input"]
    g = GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, n_positions=64, attn_implementation="eager")
    yield "gpt2_small", hf_wrapper(GPT2Model(g), "gpt2"), (torch.randint(0, 100, (1, 16)),), ["input_ids"]
    b = BertConfig(num_hidden_layers=2, hidden_size=32, num_attention_heads=2, intermediate_size=64, vocab_size=100,
                   max_position_embeddings=64, attn_implementation="eager")
    ids = torch.randint(0, 100, (1, 16))
    yield ("bert_small", hf_wrapper(BertModel(b, add_pooling_layer=False), "bert"),
           (ids, torch.ones(1, 16, dtype=torch.int64)), ["input_ids", "attention_mask"])


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    for name, m, inputs, names in small_models():
        path = os.path.join(out, name + ".onnx")
        torch.onnx.export(m, inputs, path, input_names=names, opset_version=17, dynamo=False)
        with torch.no_grad():
            ref = m(*inputs)
        import numpy as np
        np.savez(os.path.join(out, name + "_io.npz"), *[t.numpy() for t in inputs], out=ref.numpy())
        print(name, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
