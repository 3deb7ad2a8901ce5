#pragma once
/// \file status.h
/// kiln's error model: every failure is a `kiln::Error` exception carrying an ErrorCode and a message that
/// names the file, node, op or tensor involved and says what to do.
///
/// Example usage:
/// \code
///   try { auto engine = kiln::Runtime(logger).load("model.plan"); }
///   catch (const kiln::Error& e) { std::cerr << e.what() << "\n"; return kiln::exit_code(e.code()); }
/// \endcode
#include <stdexcept>
#include <string>

namespace kiln {

enum class ErrorCode {
    kInvalidArgument,   ///< bad API/CLI argument, wrong input name/shape/dtype at run time
    kIoError,           ///< missing file, unreadable, cannot write
    kInvalidModel,      ///< malformed/truncated ONNX, graph that fails verification
    kInvalidPlan,       ///< corrupted plan, checksum mismatch
    kVersionMismatch,   ///< plan written by another kiln version / format version
    kUnsupported,       ///< the model uses something kiln does not support (yet)
    kOutOfMemory,       ///< allocation failed
    kInternal,          ///< a bug in kiln
};

const char* error_code_name(ErrorCode code);

/// Process exit code for an error: 3 for kUnsupported (so scripts can tell "not supported yet" from a broken file),
/// 2 for bad arguments, 1 otherwise.
int exit_code(ErrorCode code);

class Error : public std::runtime_error {
public:
    Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
    ErrorCode code() const { return code_; }

private:
    ErrorCode code_;
};

}  // namespace kiln
