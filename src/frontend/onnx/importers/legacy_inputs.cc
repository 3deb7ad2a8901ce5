// Ops whose attributes became inputs in later opsets: the old form is converted to the new one.
#include "src/frontend/onnx/importers/importers.h"

namespace kiln::onnx_import {

// Squeeze/Unsqueeze: `axes` attribute before opset 13.
void import_axes_before_13(ImportContext& c) {
    if (c.opset < 13) c.attr_to_input("axes", 1);
    c.emit_as_is();
}

// ReduceMean/Max/Min/Prod/...: `axes` attribute before opset 18 (ReduceSum: before 13).
void import_reduce(ImportContext& c) {
    int64_t since = c.op_type == "ReduceSum" ? 13 : 18;
    if (c.opset < since) c.attr_to_input("axes", 1);
    c.emit_as_is();
}

// Split: `split` attribute before opset 13.
void import_split(ImportContext& c) {
    if (c.opset < 13) c.attr_to_input("split", 1);
    c.emit_as_is();
}

// Slice: starts/ends/axes attributes before opset 10.
void import_slice(ImportContext& c) {
    if (c.opset < 10) {
        c.attr_to_input("starts", 1);
        c.attr_to_input("ends", 2);
        c.attr_to_input("axes", 3);
    }
    c.emit_as_is();
}

// Pad: `pads` (opset 2-10) / `paddings` (opset 1) and `value` attributes before opset 11.
void import_pad(ImportContext& c) {
    if (c.opset < 11) {
        if (c.attrs.has("paddings")) {
            c.attrs.set("pads", c.attrs.get_ints("paddings"));
            c.attrs.erase("paddings");
        }
        c.attr_to_input("pads", 1);
        float value = c.attrs.get_float("value", 0.f);
        c.attrs.erase("value");
        c.inputs.resize(3, nullptr);
        c.inputs[2] = c.const_scalar_f32(value, "value");
    }
    c.emit_as_is();
}

// Clip: `min`/`max` float attributes before opset 11.
void import_clip(ImportContext& c) {
    if (c.opset < 11) {
        c.inputs.resize(3, nullptr);
        if (c.attrs.has("min")) c.inputs[1] = c.const_scalar_f32(c.attrs.get_float("min", 0.f), "min");
        if (c.attrs.has("max")) c.inputs[2] = c.const_scalar_f32(c.attrs.get_float("max", 0.f), "max");
        c.attrs.erase("min");
        c.attrs.erase("max");
    }
    c.emit_as_is();
}

// Resize opset 10: (X, scales) -> (X, roi = none, scales).
void import_resize(ImportContext& c) {
    if (c.opset < 11 && c.inputs.size() == 2) c.inputs = {c.inputs[0], nullptr, c.inputs[1]};
    c.emit_as_is();
}

// Dropout: inference only; `ratio`/`is_test` attributes of old opsets are dropped.
void import_dropout(ImportContext& c) {
    c.attrs.erase("ratio");
    c.attrs.erase("is_test");
    c.attrs.erase("seed");
    if (c.opset < 12) c.inputs.resize(1);
    c.emit_as_is();
}

// BatchNormalization: old opsets' `spatial`/`is_test`/`consumed_inputs`; only the inference output is kept.
void import_batch_norm(ImportContext& c) {
    KILN_CHECK(c.attrs.get_int("spatial", 1) == 1, kUnsupported, c.where(), ": spatial=0 is not supported");
    KILN_CHECK(c.attrs.get_int("training_mode", 0) == 0, kUnsupported, c.where(),
               ": training_mode=1 is not supported (kiln runs inference)");
    for (const char* a : {"spatial", "is_test", "consumed_inputs", "momentum", "training_mode"}) c.attrs.erase(a);
    c.outputs.resize(1);
    c.emit_as_is();
}

}  // namespace kiln::onnx_import
