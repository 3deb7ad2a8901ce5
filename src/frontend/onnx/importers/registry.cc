// Which ops have their own importer.
#include <map>

#include "src/frontend/onnx/importers/importers.h"

namespace kiln::onnx_import {

ImporterFn find_importer(const std::string& op_type) {
    static const std::map<std::string, ImporterFn> kImporters = {
        {"Squeeze", &import_axes_before_13},   {"Unsqueeze", &import_axes_before_13},
        {"ReduceMean", &import_reduce},        {"ReduceSum", &import_reduce},
        {"ReduceMax", &import_reduce},         {"ReduceMin", &import_reduce},
        {"ReduceProd", &import_reduce},        {"Split", &import_split},
        {"Slice", &import_slice},              {"Pad", &import_pad},
        {"Clip", &import_clip},                {"Resize", &import_resize},
        {"Dropout", &import_dropout},          {"BatchNormalization", &import_batch_norm},
        {"Softmax", &import_softmax},          {"LogSoftmax", &import_softmax},
    };
    auto it = kImporters.find(op_type);
    return it == kImporters.end() ? nullptr : it->second;
}

}  // namespace kiln::onnx_import
