#pragma once
/// \file logger.h
/// A user-supplied logger, passed to Builder and Runtime (no hidden global state).
///
/// Example usage:
/// \code
///   struct MyLogger : kiln::Logger {
///       void log(kiln::Severity s, const std::string& msg) override { if (s <= kiln::Severity::kWarning) std::cerr << msg; }
///   };
/// \endcode
#include <string>

namespace kiln {

enum class Severity { kError = 0, kWarning = 1, kInfo = 2, kVerbose = 3 };

const char* severity_name(Severity s);

class Logger {
public:
    virtual ~Logger() = default;
    virtual void log(Severity severity, const std::string& message) = 0;
};

/// Writes messages at or above `min_severity` to stderr.
class StderrLogger : public Logger {
public:
    explicit StderrLogger(Severity min_severity = Severity::kWarning) : min_(min_severity) {}
    void log(Severity severity, const std::string& message) override;
    void set_min_severity(Severity s) { min_ = s; }

private:
    Severity min_;
};

/// Discards everything.
class NullLogger : public Logger {
public:
    void log(Severity, const std::string&) override {}
};

}  // namespace kiln
