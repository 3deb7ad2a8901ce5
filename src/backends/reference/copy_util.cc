// Strided N-d copy and fill shared by the data-movement reference kernels.
#include "src/backends/reference/copy_util.h"

namespace kiln::backends::reference {

namespace {

struct Axis {
    int64_t size, dst_stride, src_stride;
};

template <typename T>
void copy_axes(T* dst, const T* src, const std::vector<Axis>& axes) {
    if (axes.empty()) {
        *dst = *src;
        return;
    }
    const Axis& in = axes.back();
    int outer_rank = static_cast<int>(axes.size()) - 1;
    int64_t outer = 1;
    for (int k = 0; k < outer_rank; ++k) outer *= axes[k].size;
    std::vector<int64_t> idx(outer_rank, 0);
    int64_t doff = 0, soff = 0;
    for (int64_t o = 0; o < outer; ++o) {
        T* d = dst + doff;
        const T* s = src + soff;
        if (in.dst_stride == 1 && in.src_stride == 1) {
            std::memcpy(d, s, in.size * sizeof(T));
        } else {
            for (int64_t j = 0; j < in.size; ++j) d[j * in.dst_stride] = s[j * in.src_stride];
        }
        for (int k = outer_rank - 1; k >= 0; --k) {  // odometer step over the outer axes
            doff += axes[k].dst_stride;
            soff += axes[k].src_stride;
            if (++idx[k] < axes[k].size) break;
            doff -= axes[k].size * axes[k].dst_stride;
            soff -= axes[k].size * axes[k].src_stride;
            idx[k] = 0;
        }
    }
}

}  // namespace

void strided_copy(void* dst, const std::vector<int64_t>& dst_strides, const void* src,
                  const std::vector<int64_t>& src_strides, const Shape& shape, size_t elem_size) {
    KILN_ASSERT(dst_strides.size() == shape.size() && src_strides.size() == shape.size());
    std::vector<Axis> axes;
    for (size_t k = 0; k < shape.size(); ++k) {
        if (shape[k] == 0) return;
        if (shape[k] == 1) continue;
        // Merge with the previous (outer) axis when that one steps exactly over this one in both tensors.
        if (!axes.empty()) {
            Axis& prev = axes.back();
            if (prev.dst_stride == dst_strides[k] * shape[k] && prev.src_stride == src_strides[k] * shape[k]) {
                prev = {prev.size * shape[k], dst_strides[k], src_strides[k]};
                continue;
            }
        }
        axes.push_back({shape[k], dst_strides[k], src_strides[k]});
    }
    if (elem_size != 1 && elem_size != 2 && elem_size != 4 && elem_size != 8) {  // move odd sizes as bytes
        for (Axis& a : axes) {
            a.dst_stride *= static_cast<int64_t>(elem_size);
            a.src_stride *= static_cast<int64_t>(elem_size);
        }
        axes.push_back({static_cast<int64_t>(elem_size), 1, 1});
        elem_size = 1;
    }
    dispatch_elem_size(elem_size,
                       [&]<typename U>() { copy_axes(static_cast<U*>(dst), static_cast<const U*>(src), axes); });
}

void fill_elements(void* dst, int64_t n, const void* value, size_t elem_size) {
    if (n <= 0) return;
    char* d = static_cast<char*>(dst);
    std::memcpy(d, value, elem_size);
    // Doubling copies: [v] -> [v v] -> [v v v v] ...
    int64_t done = 1;
    while (done < n) {
        int64_t chunk = std::min(done, n - done);
        std::memcpy(d + done * elem_size, d, chunk * elem_size);
        done += chunk;
    }
}

}  // namespace kiln::backends::reference
