#pragma once
// Dtype-agnostic N-d copies for the data-movement reference kernels (Transpose, Slice, Expand, Tile, Concat, Split,
// Pad): elements are moved as opaque units of `elem_size` bytes, so one kernel serves every dtype.
//
// Example usage (transpose a 2-D tensor of any dtype):
//   strided_copy(out.raw(), strides_of(out.shape()), in.raw(), {1, in.dim(1)}, out.shape(), dtype_size(in.dtype()));
#include <cstdint>
#include <cstring>
#include <vector>

#include "kiln/tensor.h"
#include "src/common/check.h"

namespace kiln::backends::reference {

/// For every index i of `shape`: dst[sum_k i_k * dst_strides[k]] = src[sum_k i_k * src_strides[k]].
/// Strides are in elements and may be 0 (broadcast) or negative (reversed slices); dims that are contiguous in both
/// source and destination are merged, and contiguous innermost runs use memcpy.
void strided_copy(void* dst, const std::vector<int64_t>& dst_strides, const void* src,
                  const std::vector<int64_t>& src_strides, const Shape& shape, size_t elem_size);

/// Writes `n` copies of the element at `value` (elem_size bytes) to dst.
void fill_elements(void* dst, int64_t n, const void* value, size_t elem_size);

/// Byte pointer to element `offset` of a tensor of elements of `elem_size` bytes.
inline char* elem_ptr(void* base, int64_t offset, size_t elem_size) {
    return static_cast<char*>(base) + offset * static_cast<int64_t>(elem_size);
}
inline const char* elem_ptr(const void* base, int64_t offset, size_t elem_size) {
    return static_cast<const char*>(base) + offset * static_cast<int64_t>(elem_size);
}

/// Calls f.template operator()<U>() with U an unsigned integer type of `elem_size` bytes (1, 2, 4 or 8), for
/// element-wise moves that do not care about the dtype.
template <typename F>
decltype(auto) dispatch_elem_size(size_t elem_size, F&& f) {
    switch (elem_size) {
        case 1: return f.template operator()<uint8_t>();
        case 2: return f.template operator()<uint16_t>();
        case 4: return f.template operator()<uint32_t>();
        case 8: return f.template operator()<uint64_t>();
        default: break;
    }
    KILN_FAIL(kInternal, "unexpected element size ", elem_size);
}

}  // namespace kiln::backends::reference
