// Error codes, logger and attribute helpers of the public API.
#include <cstdio>
#include <cstring>
#include <sstream>

#include "kiln/attribute.h"
#include "kiln/logger.h"
#include "kiln/status.h"
#include "src/common/strings.h"

namespace kiln {

const char* error_code_name(ErrorCode code) {
    switch (code) {
        case ErrorCode::kInvalidArgument: return "invalid argument";
        case ErrorCode::kIoError: return "I/O error";
        case ErrorCode::kInvalidModel: return "invalid model";
        case ErrorCode::kInvalidPlan: return "invalid plan";
        case ErrorCode::kVersionMismatch: return "version mismatch";
        case ErrorCode::kUnsupported: return "unsupported";
        case ErrorCode::kOutOfMemory: return "out of memory";
        case ErrorCode::kInternal: return "internal error";
    }
    return "error";
}

int exit_code(ErrorCode code) {
    switch (code) {
        case ErrorCode::kUnsupported: return 3;
        case ErrorCode::kInvalidArgument: return 2;
        default: return 1;
    }
}

const char* severity_name(Severity s) {
    switch (s) {
        case Severity::kError: return "error";
        case Severity::kWarning: return "warning";
        case Severity::kInfo: return "info";
        case Severity::kVerbose: return "verbose";
    }
    return "?";
}

void StderrLogger::log(Severity severity, const std::string& message) {
    if (severity > min_) return;
    std::fprintf(stderr, "[kiln %s] %s\n", severity_name(severity), message.c_str());
}

const char* attribute_kind_name(const Attribute& a) {
    static const char* kNames[] = {"int", "float", "string", "ints", "floats", "strings", "tensor"};
    return kNames[a.index()];
}

namespace {
template <typename T>
const T* typed(const std::map<std::string, Attribute>& m, const std::string& name, const char* want) {
    auto it = m.find(name);
    if (it == m.end()) return nullptr;
    if (auto* v = std::get_if<T>(&it->second)) return v;
    throw Error(ErrorCode::kInvalidModel, cat("attribute '", name, "' has kind ", attribute_kind_name(it->second),
                                              ", expected ", want));
}
}  // namespace

int64_t AttributeMap::get_int(const std::string& name, int64_t def) const {
    auto* v = typed<int64_t>(values_, name, "int");
    return v ? *v : def;
}
float AttributeMap::get_float(const std::string& name, float def) const {
    auto it = values_.find(name);
    if (it != values_.end())
        if (auto* i = std::get_if<int64_t>(&it->second)) return static_cast<float>(*i);
    auto* v = typed<float>(values_, name, "float");
    return v ? *v : def;
}
std::string AttributeMap::get_string(const std::string& name, const std::string& def) const {
    auto* v = typed<std::string>(values_, name, "string");
    return v ? *v : def;
}
std::vector<int64_t> AttributeMap::get_ints(const std::string& name, const std::vector<int64_t>& def) const {
    auto* v = typed<std::vector<int64_t>>(values_, name, "ints");
    return v ? *v : def;
}
std::vector<float> AttributeMap::get_floats(const std::string& name, const std::vector<float>& def) const {
    auto* v = typed<std::vector<float>>(values_, name, "floats");
    return v ? *v : def;
}
std::vector<std::string> AttributeMap::get_strings(const std::string& name) const {
    auto* v = typed<std::vector<std::string>>(values_, name, "strings");
    return v ? *v : std::vector<std::string>{};
}
const Tensor* AttributeMap::get_tensor(const std::string& name) const { return typed<Tensor>(values_, name, "tensor"); }
int64_t AttributeMap::require_int(const std::string& name) const {
    auto* v = typed<int64_t>(values_, name, "int");
    if (!v) throw Error(ErrorCode::kInvalidModel, cat("required attribute '", name, "' is missing"));
    return *v;
}
std::vector<int64_t> AttributeMap::require_ints(const std::string& name) const {
    auto* v = typed<std::vector<int64_t>>(values_, name, "ints");
    if (!v) throw Error(ErrorCode::kInvalidModel, cat("required attribute '", name, "' is missing"));
    return *v;
}

bool AttributeMap::operator==(const AttributeMap& o) const { return values_ == o.values_; }

std::string attribute_str(const Attribute& a) {
    std::ostringstream os;
    std::visit(
        [&](const auto& x) {
            using T = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<T, Tensor>) {
                os << "tensor<" << dtype_name(x.dtype()) << "[" << shape_str(x.shape()) << "]>";
            } else if constexpr (std::is_same_v<T, std::string>) {
                os << '"' << x << '"';
            } else if constexpr (std::is_arithmetic_v<T>) {
                os << x;
            } else {
                os << "[" << join(x, ",") << "]";
            }
        },
        a);
    return os.str();
}

}  // namespace kiln
