// LayerNormalization, RMSNormalization and Softmax over the last axes: rows of `inner` floats, threads over rows;
// reductions use 16 partial sums so the compiler vectorises them without reassociation flags.
#include <algorithm>
#include <cmath>
#include <limits>

#include "src/backends/cpu/cpu_backend.h"
#include "src/backends/cpu/thread_pool.h"
#include "src/backends/cpu/vec_math.h"

namespace kiln::backends::cpu {

namespace {

inline float sq_dev16(const float* x, int64_t n, float mean) {
    float acc[16] = {};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; ++l) acc[l] += (x[i + l] - mean) * (x[i + l] - mean);
    float s = 0.f;
    for (; i < n; ++i) s += (x[i] - mean) * (x[i] - mean);
    for (float a : acc) s += a;
    return s;
}

// rms = true: y = x / sqrt(mean(x^2) + eps) * g;  else y = (x - mean) / sqrt(var + eps) * g + b
KILN_CPU_MULTIVERSION void norm_rows(const float* x, float* y, const float* g, const float* b, int64_t rows,
                                     int64_t n, float eps, bool rms) {
    for (int64_t r = 0; r < rows; ++r, x += n, y += n) {
        float mean = rms ? 0.f : sum16(x, n) / n;
        float inv = 1.f / std::sqrt(sq_dev16(x, n, mean) / n + eps);
        if (b)
            for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * inv * g[i] + b[i];
        else
            for (int64_t i = 0; i < n; ++i) y[i] = (x[i] - mean) * inv * g[i];
    }
}

KILN_CPU_MULTIVERSION void softmax_rows(const float* x, float* y, int64_t rows, int64_t n) {
    for (int64_t r = 0; r < rows; ++r, x += n, y += n) {
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[i]);
        for (int64_t i = 0; i < n; ++i) y[i] = exp_approx(x[i] - mx);
        float inv = 1.f / sum16(y, n);
        for (int64_t i = 0; i < n; ++i) y[i] *= inv;
    }
}

int64_t norm_axis(const KernelNode& node) {
    int64_t axis = node.attrs.get_int("axis", -1);
    return axis < 0 ? axis + node.inputs[0].rank() : axis;
}

}  // namespace

bool supports_norm(const KernelNode& node) {
    const ops::TensorInfo& x = node.inputs[0];
    int64_t axis = norm_axis(node);
    if (axis < 0 || axis >= x.rank()) return false;
    int64_t inner = 1;
    for (int i = static_cast<int>(axis); i < x.rank(); ++i) {
        if (!x.dims[i].is_static()) return false;
        inner *= x.dims[i].value;
    }
    for (size_t i = 1; i < node.inputs.size(); ++i) {  // scale and bias: exactly `inner` values
        const ops::TensorInfo& t = node.inputs[i];
        if (!t.present) continue;
        if (!is_static(t.dims) || shape_numel([&] {
                Shape s;
                for (const Dim& d : t.dims) s.push_back(d.value);
                return s;
            }()) != inner)
            return false;
    }
    return true;
}

std::unique_ptr<Kernel> make_cpu_norm(const KernelNode& node) {
    const bool rms = node.op_type == "RMSNormalization";
    const int64_t axis = norm_axis(node);
    const float eps = node.attrs.get_float("epsilon", 1e-5f);
    return make_kernel(
        [=](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            int64_t inner = 1;
            for (int i = static_cast<int>(axis); i < x.rank(); ++i) inner *= x.dim(i);
            const int64_t rows = inner ? x.numel() / inner : 0;
            const float* g = a.inputs[1]->data<float>();
            const float* b = a.inputs.size() > 2 && a.inputs[2] ? a.inputs[2]->data<float>() : nullptr;
            const float* xp = x.data<float>();
            float* yp = a.outputs[0]->data<float>();
            parallel_for(rows, a.num_threads, [&](int64_t r0, int64_t r1) {
                norm_rows(xp + r0 * inner, yp + r0 * inner, g, b, r1 - r0, inner, eps, rms);
            }, grain_rows(inner));
        },
        rms ? "rms_norm_f32_avx512" : "layer_norm_f32_avx512", true);
}

bool supports_softmax(const KernelNode& node) {
    int rank = node.inputs[0].rank();
    int64_t axis = node.attrs.get_int("axis", -1);
    return rank >= 1 && (axis == -1 || axis == rank - 1) && node.inputs[0].dims[rank - 1].is_static();
}

std::unique_ptr<Kernel> make_cpu_softmax(const KernelNode& node) {
    return make_kernel(
        [](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            const int64_t n = x.dim(-1), rows = n ? x.numel() / n : 0;
            const float* xp = x.data<float>();
            float* yp = a.outputs[0]->data<float>();
            parallel_for(rows, a.num_threads, [&](int64_t r0, int64_t r1) {
                softmax_rows(xp + r0 * n, yp + r0 * n, r1 - r0, n);
            }, grain_rows(n));
        },
        "softmax_f32_lastaxis_avx512", true);
}

}  // namespace kiln::backends::cpu
