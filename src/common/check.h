#pragma once
// KILN_CHECK / KILN_FAIL: throw kiln::Error with a formatted message.
#include "kiln/status.h"
#include "src/common/strings.h"

#define KILN_FAIL(code, ...) throw ::kiln::Error(::kiln::ErrorCode::code, ::kiln::cat(__VA_ARGS__))
#define KILN_CHECK(cond, code, ...) \
    do {                            \
        if (!(cond)) KILN_FAIL(code, __VA_ARGS__); \
    } while (0)
#define KILN_ASSERT(cond) \
    KILN_CHECK(cond, kInternal, "internal check failed: ", #cond, " at ", __FILE__, ":", __LINE__)
