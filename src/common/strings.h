#pragma once
// Small string helpers: cat(...) concatenates anything streamable, join() joins ranges.
#include <cstring>
#include <sstream>
#include <string>
#include <vector>

namespace kiln {

template <typename... Args>
std::string cat(const Args&... args) {
    std::ostringstream os;
    (os << ... << args);
    return os.str();
}

template <typename Range>
std::string join(const Range& r, const std::string& sep) {
    std::ostringstream os;
    bool first = true;
    for (const auto& x : r) {
        if (!first) os << sep;
        os << x;
        first = false;
    }
    return os.str();
}

}  // namespace kiln
