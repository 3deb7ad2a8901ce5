#pragma once
// Numpy-style (multidirectional) broadcasting for elementwise kernels.
//
// for_each_broadcast_run() walks the output in contiguous runs: within a run the output index advances by 1 and
// every input index advances by its step, which is 1 (the input varies along the run) or 0 (it is broadcast along
// it). Dims of extent 1 are dropped and adjacent dims that are contiguous in every input are merged first, so
// typical cases take few, long runs: equal shapes or a scalar operand are one run over the whole tensor, a bias
// [C] added to [N, S, C] is N*S runs of C, a [C, 1, 1] scale of [N, C, H, W] is N*C runs of H*W.
// broadcast_unary/binary/ternary() wrap it into tight per-run loops with the common step patterns specialised so
// the compiler can vectorise them.
//
// Example usage:
//   broadcast_binary<float, float, float>(a, b, out, [](float x, float y) { return x + y; });
//   broadcast_binary<float, float, uint8_t>(a, b, out, [](float x, float y) -> uint8_t { return x < y; });
#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "kiln/tensor.h"
#include "src/common/check.h"

namespace kiln::backends::reference {

/// One contiguous run of the output: out[out_offset + i] pairs with input k's element offset[k] + i * step[k],
/// for i in [0, count). step[k] is 0 (broadcast along the run) or 1.
template <size_t N>
struct BroadcastRun {
    int64_t out_offset = 0;
    int64_t count = 0;
    std::array<int64_t, N> offset{};
    std::array<int64_t, N> step{};
};

/// Calls f(const BroadcastRun<N>&) for runs covering the whole output, in increasing output order. Every input
/// shape must broadcast to `out` (right-aligned, each dim equal to out's or 1); throws kInternal otherwise, since
/// shape inference has already checked that.
template <size_t N, typename F>
void for_each_broadcast_run(const Shape& out, const std::array<const Shape*, N>& ins, F&& f) {
    const int64_t total = shape_numel(out);
    if (total == 0) return;
    const int rank = static_cast<int>(out.size());

    // Fast path: every input has the output's shape or is a single element.
    BroadcastRun<N> run;
    bool simple = true;
    for (size_t k = 0; k < N; ++k) {
        if (*ins[k] == out) {
            run.step[k] = 1;
        } else if (shape_numel(*ins[k]) == 1 && static_cast<int>(ins[k]->size()) <= rank) {
            run.step[k] = 0;
        } else {
            simple = false;
        }
    }
    if (simple) {
        run.count = total;
        f(run);
        return;
    }

    // General path: per input, the element stride along each output dim (0 where broadcast); drop extent-1 dims
    // and merge an outer dim into the next inner one when, for every input, stride_outer == stride_inner * extent.
    std::array<std::vector<int64_t>, N> real;  // row-major strides of each input, right-aligned to the output
    for (size_t k = 0; k < N; ++k) {
        const Shape& s = *ins[k];
        const int off = rank - static_cast<int>(s.size());
        KILN_CHECK(off >= 0, kInternal, "cannot broadcast shape ", shape_str(s), " to ", shape_str(out));
        real[k].assign(rank, 0);
        int64_t acc = 1;
        for (int d = rank - 1; d >= off; --d) {
            const int64_t e = s[d - off];
            KILN_CHECK(e == out[d] || e == 1, kInternal, "cannot broadcast shape ", shape_str(s), " to ",
                       shape_str(out));
            real[k][d] = e == 1 ? 0 : acc;
            acc *= e;
        }
    }
    std::vector<int64_t> dims;
    std::array<std::vector<int64_t>, N> strides;
    for (int d = 0; d < rank; ++d) {
        if (out[d] == 1) continue;
        bool merge = !dims.empty();
        for (size_t k = 0; k < N && merge; ++k) merge = strides[k].back() == real[k][d] * out[d];
        if (merge) {
            dims.back() *= out[d];
            for (size_t k = 0; k < N; ++k) strides[k].back() = real[k][d];
        } else {
            dims.push_back(out[d]);
            for (size_t k = 0; k < N; ++k) strides[k].push_back(real[k][d]);
        }
    }

    // Odometer over the outer dims; the innermost merged dim is the run.
    const int m = static_cast<int>(dims.size());
    run.count = dims[m - 1];
    for (size_t k = 0; k < N; ++k) run.step[k] = strides[k][m - 1];
    std::vector<int64_t> idx(m, 0);
    for (int64_t o = 0; o < total; o += run.count) {
        run.out_offset = o;
        f(run);
        for (int d = m - 2; d >= 0; --d) {
            if (++idx[d] < dims[d]) {
                for (size_t k = 0; k < N; ++k) run.offset[k] += strides[k][d];
                break;
            }
            idx[d] = 0;
            for (size_t k = 0; k < N; ++k) run.offset[k] -= strides[k][d] * (dims[d] - 1);
        }
    }
}

/// out = op(a), with `a` broadcast to out's shape (Expand, Min/Max of one input, ...).
template <typename TA, typename TO, typename Op>
void broadcast_unary(const Tensor& a, Tensor& out, Op op) {
    const TA* pa = a.data<TA>();
    TO* po = out.data<TO>();
    for_each_broadcast_run<1>(out.shape(), {&a.shape()}, [&](const BroadcastRun<1>& r) {
        const TA* x = pa + r.offset[0];
        TO* z = po + r.out_offset;
        if (r.step[0]) {
            for (int64_t i = 0; i < r.count; ++i) z[i] = op(x[i]);
        } else {
            std::fill(z, z + r.count, static_cast<TO>(op(*x)));
        }
    });
}

/// out = op(a, b) with numpy broadcasting; `out` may alias an input of the output's shape.
template <typename TA, typename TB, typename TO, typename Op>
void broadcast_binary(const Tensor& a, const Tensor& b, Tensor& out, Op op) {
    const TA* pa = a.data<TA>();
    const TB* pb = b.data<TB>();
    TO* po = out.data<TO>();
    for_each_broadcast_run<2>(out.shape(), {&a.shape(), &b.shape()}, [&](const BroadcastRun<2>& r) {
        const TA* x = pa + r.offset[0];
        const TB* y = pb + r.offset[1];
        TO* z = po + r.out_offset;
        const int64_t n = r.count;
        if (r.step[0] && r.step[1]) {
            for (int64_t i = 0; i < n; ++i) z[i] = op(x[i], y[i]);
        } else if (r.step[1]) {
            const TA xv = *x;
            for (int64_t i = 0; i < n; ++i) z[i] = op(xv, y[i]);
        } else if (r.step[0]) {
            const TB yv = *y;
            for (int64_t i = 0; i < n; ++i) z[i] = op(x[i], yv);
        } else {
            std::fill(z, z + n, static_cast<TO>(op(*x, *y)));
        }
    });
}

/// out = op(a, b, c) with numpy broadcasting (Where, ...).
template <typename TA, typename TB, typename TC, typename TO, typename Op>
void broadcast_ternary(const Tensor& a, const Tensor& b, const Tensor& c, Tensor& out, Op op) {
    const TA* pa = a.data<TA>();
    const TB* pb = b.data<TB>();
    const TC* pc = c.data<TC>();
    TO* po = out.data<TO>();
    for_each_broadcast_run<3>(out.shape(), {&a.shape(), &b.shape(), &c.shape()}, [&](const BroadcastRun<3>& r) {
        const TA* x = pa + r.offset[0];
        const TB* y = pb + r.offset[1];
        const TC* w = pc + r.offset[2];
        TO* z = po + r.out_offset;
        const int64_t n = r.count;
        if (r.step[0] && r.step[1] && r.step[2]) {
            for (int64_t i = 0; i < n; ++i) z[i] = op(x[i], y[i], w[i]);
        } else {
            const int64_t sx = r.step[0], sy = r.step[1], sw = r.step[2];
            for (int64_t i = 0; i < n; ++i) z[i] = op(x[i * sx], y[i * sy], w[i * sw]);
        }
    });
}

}  // namespace kiln::backends::reference
