#pragma once
/// \file runtime.h
/// Runtime: loads serialised plans into Engines. Lives in the runtime library, which links neither the ONNX
/// frontend nor the optimiser, so a deployment can ship it alone.
///
/// Example usage:
/// \code
///   kiln::StderrLogger logger;
///   std::shared_ptr<kiln::Engine> engine = kiln::Runtime(logger).load("model.plan");
/// \endcode
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kiln/engine.h"
#include "kiln/logger.h"

namespace kiln {

class Runtime {
public:
    explicit Runtime(Logger& logger) : logger_(logger) {}
    /// `source` names the plan in errors (a file name).
    std::shared_ptr<Engine> deserialize(const std::vector<uint8_t>& bytes, const std::string& source = "<memory>");
    std::shared_ptr<Engine> load(const std::string& path);

private:
    Logger& logger_;
};

}  // namespace kiln
