#pragma once
// Per-op importers for ops whose ONNX form needs converting; every other op is imported as is.
#include "src/frontend/onnx/import_context.h"

namespace kiln::onnx_import {

void import_axes_before_13(ImportContext& c);
void import_reduce(ImportContext& c);
void import_split(ImportContext& c);
void import_slice(ImportContext& c);
void import_pad(ImportContext& c);
void import_clip(ImportContext& c);
void import_resize(ImportContext& c);
void import_dropout(ImportContext& c);
void import_batch_norm(ImportContext& c);
void import_softmax(ImportContext& c);

}  // namespace kiln::onnx_import
