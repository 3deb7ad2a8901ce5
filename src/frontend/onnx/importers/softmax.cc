// Softmax / LogSoftmax before opset 13 coerce the input to 2-D at `axis` (default 1):
//   y = Reshape(Softmax(Flatten(x, axis), axis=-1), Shape(x))
// When the axis is already the last one, that is plain Softmax along -1.
#include "src/frontend/onnx/importers/importers.h"

namespace kiln::onnx_import {

void import_softmax(ImportContext& c) {
    if (c.opset >= 13) {
        c.emit_as_is();
        return;
    }
    int64_t axis = c.attrs.get_int("axis", 1);
    ir::Value* x = c.input(0);
    KILN_CHECK(x, kInvalidModel, c.where(), ": missing input");
    int64_t rank = x->shape_known ? static_cast<int64_t>(x->dims.size()) : -1;
    if (rank >= 0 && (axis == rank - 1 || axis == -1)) {
        AttributeMap a;
        a.set("axis", int64_t{-1});
        c.emit(c.op_type, {x}, c.outputs, a, c.node_name);
        return;
    }
    AttributeMap flat;
    flat.set("axis", axis);
    ir::Value* x2d = c.temp("flat");
    c.emit("Flatten", {x}, {x2d}, flat);
    ir::Value* y2d = c.temp("softmax2d");
    AttributeMap sm;
    sm.set("axis", int64_t{-1});
    c.emit(c.op_type, {x2d}, {y2d}, sm, c.node_name);
    ir::Value* shape = c.temp("shape");
    c.emit("Shape", {x}, {shape}, {});
    c.emit("Reshape", {y2d, shape}, c.outputs, {});
}

}  // namespace kiln::onnx_import
