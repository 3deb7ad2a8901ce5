// Elementwise ops: Add/Sub/Mul/Div with numpy broadcasting and Gelu/Relu/Sigmoid/Tanh. Broadcasting is reduced to
// rows: adjacent dims with the same broadcast pattern are merged, so [N,C,H,W] * [N,C,1,1] becomes N*C rows of
// H*W times a scalar, and [B,S,D] + [D] becomes B*S rows plus a vector.
//
// On nChw16c activations (the planner ties the output to every input of the output's shape, so those share the
// layout) two forms are supported: all operands of the output's shape (an elementwise loop over the padded bytes;
// 0 op 0 keeps the padding zero) and one such operand with a plain per-channel [N|1, C, 1, 1] operand (the squeeze-
// excite Mul), read as one 16-channel vector per block with zeros for the padding channels.
#include <algorithm>
#include <cmath>

#include "src/backends/cpu/cpu_backend.h"
#include "src/backends/cpu/thread_pool.h"
#include "src/backends/cpu/vec_math.h"

namespace kiln::backends::cpu {

namespace {

enum class BinOp { kAdd, kSub, kMul, kDiv };

template <BinOp Op>
inline float bin(float x, float y) {
    if constexpr (Op == BinOp::kAdd) return x + y;
    if constexpr (Op == BinOp::kSub) return x - y;
    if constexpr (Op == BinOp::kMul) return x * y;
    return x / y;
}

// y[i] = a[i * sa] op b[i * sb] for i < n, strides 0 or 1
template <BinOp Op>
KILN_CPU_MULTIVERSION void bin_row(const float* a, int64_t sa, const float* b, int64_t sb, float* y, int64_t n) {
    if (sa && sb)
        for (int64_t i = 0; i < n; ++i) y[i] = bin<Op>(a[i], b[i]);
    else if (sa)
        for (int64_t i = 0; i < n; ++i) y[i] = bin<Op>(a[i], b[0]);
    else if (sb)
        for (int64_t i = 0; i < n; ++i) y[i] = bin<Op>(a[0], b[i]);
    else
        for (int64_t i = 0; i < n; ++i) y[i] = bin<Op>(a[0], b[0]);
}

struct Plan {
    Shape dims;                        // merged output dims
    std::vector<int64_t> sa, sb;       // element strides of a and b per merged dim (0 = broadcast)
};

Plan plan_broadcast(const Shape& as, const Shape& bs, const Shape& ys) {
    const size_t r = ys.size();
    auto pad = [&](const Shape& s) {
        Shape p(r - s.size(), 1);
        p.insert(p.end(), s.begin(), s.end());
        return p;
    };
    Shape a = pad(as), b = pad(bs);
    Plan p;
    int last_pattern = -1;
    for (size_t i = 0; i < r; ++i) {
        if (ys[i] == 1) continue;
        int pattern = (a[i] == 1 ? 1 : 0) | (b[i] == 1 ? 2 : 0);
        if (pattern == last_pattern) {
            p.dims.back() *= ys[i];
        } else {
            p.dims.push_back(ys[i]);
            p.sa.push_back(pattern & 1 ? 0 : 1);
            p.sb.push_back(pattern & 2 ? 0 : 1);
            last_pattern = pattern;
        }
    }
    if (p.dims.empty()) {
        p.dims = {1};
        p.sa = {1};
        p.sb = {1};
    }
    // turn per-dim flags into element strides (row-major over the merged dims)
    int64_t ea = 1, eb = 1;
    for (int i = static_cast<int>(p.dims.size()) - 1; i >= 0; --i) {
        int64_t fa = p.sa[i], fb = p.sb[i];
        p.sa[i] = fa ? ea : 0;
        p.sb[i] = fb ? eb : 0;
        if (fa) ea *= p.dims[i];
        if (fb) eb *= p.dims[i];
    }
    return p;
}

template <BinOp Op>
void run_binary(const KernelArgs& args) {
    const Tensor& a = *args.inputs[0];
    const Tensor& b = *args.inputs[1];
    Tensor& y = *args.outputs[0];
    Plan p = plan_broadcast(a.shape(), b.shape(), y.shape());
    const int nd = static_cast<int>(p.dims.size());
    const int64_t inner = p.dims.back(), rows = y.numel() / std::max<int64_t>(inner, 1);
    const int64_t ia = p.sa.back() ? 1 : 0, ib = p.sb.back() ? 1 : 0;
    const float* ap = a.data<float>();
    const float* bp = b.data<float>();
    float* yp = y.data<float>();
    parallel_for(rows, args.num_threads, [&](int64_t r0, int64_t r1) {
        for (int64_t row = r0; row < r1; ++row) {
            int64_t oa = 0, ob = 0, rem = row;
            for (int i = nd - 2; i >= 0; --i) {
                int64_t idx = rem % p.dims[i];
                rem /= p.dims[i];
                oa += idx * p.sa[i];
                ob += idx * p.sb[i];
            }
            bin_row<Op>(ap + oa, ia, bp + ob, ib, yp + row * inner, inner);
        }
    }, grain_rows(inner));
}

// y = a op s (or s op a when `s_first`), a and y nChw16c [N,C,H,W], s plain [Ns,C,1,1] with Ns == N or 1.
template <BinOp Op>
KILN_CPU_MULTIVERSION void bin_blocks16(const float* a, const float* s, float* y, int64_t b0, int64_t b1,
                                        int64_t blocks_per_image, int64_t channels, int64_t hw, bool s_per_image,
                                        bool s_first) {
    for (int64_t b = b0; b < b1; ++b) {
        const int64_t image = b / blocks_per_image, c0 = (b % blocks_per_image) * kChannelBlock;
        const float* sc = s + (s_per_image ? image * channels : 0) + c0;
        float v[kChannelBlock] = {};
        for (int64_t l = 0; l < kChannelBlock && c0 + l < channels; ++l) v[l] = sc[l];
        const float* ab = a + b * hw * kChannelBlock;
        float* yb = y + b * hw * kChannelBlock;
        for (int64_t i = 0; i < hw; ++i)
            for (int l = 0; l < kChannelBlock; ++l)
                yb[i * kChannelBlock + l] = s_first ? bin<Op>(v[l], ab[i * kChannelBlock + l])
                                                    : bin<Op>(ab[i * kChannelBlock + l], v[l]);
    }
}

template <BinOp Op>
void run_binary_blocked(const KernelArgs& args) {
    const Tensor& a = *args.inputs[0];
    const Tensor& b = *args.inputs[1];
    Tensor& y = *args.outputs[0];
    const int64_t total = layout_numel(Layout::kNChw16c, y.shape());
    float* yp = y.data<float>();
    if (a.shape() == y.shape() && b.shape() == y.shape()) {
        const float* ap = a.data<float>();
        const float* bp = b.data<float>();
        parallel_for(total, args.num_threads, [&](int64_t i0, int64_t i1) {
            bin_row<Op>(ap + i0, 1, bp + i0, 1, yp + i0, i1 - i0);
        }, grain_rows(1));
        return;
    }
    const bool s_first = a.shape() != y.shape();
    const Tensor& full = s_first ? b : a;
    const Tensor& s = s_first ? a : b;
    const int64_t per_image = padded_channels(y.dim(1)) / kChannelBlock, hw = y.dim(2) * y.dim(3);
    const float* fp = full.data<float>();
    const float* sp = s.data<float>();
    const bool s_per_image = s.dim(0) > 1;
    parallel_for(y.dim(0) * per_image, args.num_threads, [&](int64_t b0, int64_t b1) {
        bin_blocks16<Op>(fp, sp, yp, b0, b1, per_image, y.dim(1), hw, s_per_image, s_first);
    }, grain_rows(hw * kChannelBlock));
}

enum class UnOp { kGelu, kGeluTanh, kRelu, kSigmoid, kTanh };

template <UnOp Op>
KILN_CPU_MULTIVERSION void un_range(const float* x, float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) {
        float v = x[i];
        if constexpr (Op == UnOp::kGelu) y[i] = 0.5f * v * (1.f + erf_approx(v * 0.70710678118654752f));
        if constexpr (Op == UnOp::kGeluTanh)
            y[i] = 0.5f * v * (1.f + tanh_approx(0.79788456080286536f * (v + 0.044715f * v * v * v)));
        if constexpr (Op == UnOp::kRelu) y[i] = v > 0.f ? v : 0.f;
        if constexpr (Op == UnOp::kSigmoid) y[i] = 1.f / (1.f + exp_approx(-v));
        if constexpr (Op == UnOp::kTanh) y[i] = tanh_approx(v);
    }
}

// On nChw16c the whole padded buffer is mapped (the planner blocks only ops with f(0) == 0 when there is padding).
template <UnOp Op, Layout L>
void run_unary(const KernelArgs& a) {
    const float* x = a.inputs[0]->data<float>();
    float* y = a.outputs[0]->data<float>();
    parallel_for(layout_numel(L, a.inputs[0]->shape()), a.num_threads,
                 [&](int64_t b, int64_t e) { un_range<Op>(x + b, y + b, e - b); }, grain_rows(1));
}

// [N|1, C, 1, 1] against a 4-D output [N, C, H, W]: a per-channel operand.
bool per_channel(const SymShape& s, const SymShape& y) {
    return s.size() == 4 && (s[0] == y[0] || s[0] == Dim(1)) && s[1] == y[1] && s[2] == Dim(1) && s[3] == Dim(1);
}

}  // namespace

bool supports_binary(const KernelNode& node) { return true; }

LayoutCaps layout_caps_binary(const KernelNode& node) {
    const SymShape& y = node.outputs[0].dims;
    if (y.size() != 4 || node.inputs.size() != 2 || !is_static(y)) return {};
    // with channel padding, Div would compute 0 / 0 there
    if (node.op_type == "Div" && y[1].value % kChannelBlock != 0) return {};
    LayoutCaps c;
    int full = 0;
    for (const ops::TensorInfo& t : node.inputs) {
        c.inputs.push_back(t.dims == y);
        if (t.dims == y)
            ++full;
        else if (!per_channel(t.dims, y))
            return {};
    }
    if (full == 0) return {};
    c.outputs = {true};
    c.tied = true;
    // out[i] = f(a[i], b[i]) reads each element before writing it: the output may go over a full-shape input that
    // dies here. The squeeze-excite Mul after a fused expand + depthwise block then writes into lines still in
    // cache instead of a cold buffer (EfficientNet-B0: the 16 Muls took 0.135 ms more without it).
    for (size_t i = 0; i < c.inputs.size(); ++i)
        if (c.inputs[i]) {
            c.overwrite_input = static_cast<int>(i);
            break;
        }
    return c;
}

std::unique_ptr<Kernel> make_cpu_binary(const KernelNode& node) {
    const std::string& op = node.op_type;
    if (node.output_layout(0) == Layout::kNChw16c) {
        for (size_t i = 0; i < 2; ++i)
            KILN_CHECK(node.input_layout(i) == Layout::kNChw16c || per_channel(node.inputs[i].dims, node.outputs[0].dims),
                       kInvalidPlan, node.where(), ": input ", i, " is neither nChw16c nor a per-channel operand");
        if (op == "Add") return make_kernel(run_binary_blocked<BinOp::kAdd>, "add_f32_nChw16c_avx512", true);
        if (op == "Sub") return make_kernel(run_binary_blocked<BinOp::kSub>, "sub_f32_nChw16c_avx512", true);
        if (op == "Mul") return make_kernel(run_binary_blocked<BinOp::kMul>, "mul_f32_nChw16c_avx512", true);
        return make_kernel(run_binary_blocked<BinOp::kDiv>, "div_f32_nChw16c_avx512", true);
    }
    if (op == "Add") return make_kernel(run_binary<BinOp::kAdd>, "add_f32_bcast_avx512", true);
    if (op == "Sub") return make_kernel(run_binary<BinOp::kSub>, "sub_f32_bcast_avx512", true);
    if (op == "Mul") return make_kernel(run_binary<BinOp::kMul>, "mul_f32_bcast_avx512", true);
    return make_kernel(run_binary<BinOp::kDiv>, "div_f32_bcast_avx512", true);
}

bool supports_unary(const KernelNode& node) {
    if (node.op_type != "Gelu") return true;
    std::string approx = node.attrs.get_string("approximate", "none");
    return approx == "none" || approx == "tanh";
}

LayoutCaps layout_caps_unary(const KernelNode& node) {
    const SymShape& y = node.outputs[0].dims;
    if (y.size() != 4 || !is_static(y)) return {};
    // padding channels must stay zero: only ops with f(0) == 0 run on padded values
    if (node.op_type == "Sigmoid" && y[1].value % kChannelBlock != 0) return {};
    LayoutCaps c;
    c.inputs = {true};
    c.outputs = {true};
    c.tied = true;
    return c;
}

namespace {

template <Layout L>
std::unique_ptr<Kernel> make_unary(const KernelNode& node, const std::string& layout) {
    const std::string& op = node.op_type;
    if (op == "Gelu")
        return node.attrs.get_string("approximate", "none") == "tanh"
                   ? make_kernel(run_unary<UnOp::kGeluTanh, L>, "gelu_tanh_f32_" + layout + "avx512", true)
                   : make_kernel(run_unary<UnOp::kGelu, L>, "gelu_f32_" + layout + "avx512", true);
    if (op == "Relu") return make_kernel(run_unary<UnOp::kRelu, L>, "relu_f32_" + layout + "avx512", true);
    if (op == "Sigmoid") return make_kernel(run_unary<UnOp::kSigmoid, L>, "sigmoid_f32_" + layout + "avx512", true);
    return make_kernel(run_unary<UnOp::kTanh, L>, "tanh_f32_" + layout + "avx512", true);
}

}  // namespace

std::unique_ptr<Kernel> make_cpu_unary(const KernelNode& node) {
    if (node.output_layout(0) == Layout::kNChw16c) return make_unary<Layout::kNChw16c>(node, "nChw16c_");
    return make_unary<Layout::kPlain>(node, "");
}

}  // namespace kiln::backends::cpu
