#pragma once
// Registers the optional backends compiled into this kiln (CUDA when built with it). Idempotent, thread-safe;
// called by the builder and the runtime before they look a backend up.
namespace kiln::runtime {

void register_builtin_backends();
/// True when this kiln was built with the CUDA backend (a GPU may still be absent at run time).
bool built_with_cuda();

}  // namespace kiln::runtime
