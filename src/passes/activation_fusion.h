#pragma once
// Folding an activation (or a residual Add) into the epilogue of a fused layer (FusedConv, FusedMatMul).
#include "src/passes/pattern.h"

namespace kiln::passes {

/// If `layer`'s output is read only by an activation kiln can fuse (Relu, LeakyRelu, Clip with constant bounds,
/// Sigmoid, HardSigmoid, HardSwish, Tanh, Elu, Gelu, or SiLU written as x * Sigmoid(x)), moves it into the layer's
/// `activation` attributes and returns true. The layer takes over the activation's output value.
bool absorb_activation(ir::Graph& g, ir::Node* layer, const UseMap& uses);

/// If `layer`'s output is read only by an Add whose other operand has the same shape, makes that operand the
/// layer's input `slot` (the residual) and returns true.
bool absorb_residual_add(ir::Graph& g, ir::Node* layer, size_t slot, const UseMap& uses);

}  // namespace kiln::passes
