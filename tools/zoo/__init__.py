"""Model-zoo generators used by tools/make_zoo.py (random-weight ONNX models)."""
from . import transformers, vision
from .builder import ALLOWED_OPS, IR_VERSION, OPSET, count_params

BUILDERS = {**vision.BUILDERS, **transformers.BUILDERS}
CONFIGS = {**vision.CONFIGS, **transformers.CONFIGS}

__all__ = ["ALLOWED_OPS", "BUILDERS", "CONFIGS", "IR_VERSION", "OPSET", "count_params"]
