// Device kernels of the "simple" families: elementwise (unary, binary with broadcast, Where), normalisations,
// Softmax, Attention, data movement (Reshape-likes, Transpose, Concat, Split, Slice, Expand, Gather) and pooling.
// Host code only: parses attributes once, then computes launch parameters from the run's concrete shapes.
#include <algorithm>
#include <cmath>
#include <map>

#include "src/backends/activation.h"
#include "src/backends/cuda/cuda_common.h"
#include "src/ops/shape_utils.h"
#include "src/ops/tensor_ops.h"

namespace kiln::cuda {

using backends::KernelNode;
using In = std::vector<const DevTensor*>;
using Out = std::vector<DevTensor*>;

std::vector<int64_t> contiguous_strides(const Shape& s) {
    std::vector<int64_t> st(s.size(), 1);
    for (int i = static_cast<int>(s.size()) - 2; i >= 0; --i) st[i] = st[i + 1] * s[i + 1];
    return st;
}

std::vector<int64_t> host_ints(const DevTensor& t, cudaStream_t stream, const std::string& what) {
    if (t.host) return t.host->to_i64_vector();
    Tensor h(t.dtype, t.shape);
    KILN_CUDA_CHECK(cudaMemcpyAsync(h.raw(), t.data, t.bytes(), cudaMemcpyDeviceToHost, stream), what);
    KILN_CUDA_CHECK(cudaStreamSynchronize(stream), what);
    return h.to_i64_vector();
}

namespace {

const std::map<std::string, UnaryOp>& unary_ops() {
    static const std::map<std::string, UnaryOp> k = {
        {"Relu", UnaryOp::kRelu},          {"Sigmoid", UnaryOp::kSigmoid},   {"Tanh", UnaryOp::kTanh},
        {"Gelu", UnaryOp::kGelu},          {"Erf", UnaryOp::kErf},           {"Exp", UnaryOp::kExp},
        {"Log", UnaryOp::kLog},            {"Sqrt", UnaryOp::kSqrt},         {"Neg", UnaryOp::kNeg},
        {"Abs", UnaryOp::kAbs},            {"Reciprocal", UnaryOp::kReciprocal}, {"LeakyRelu", UnaryOp::kLeakyRelu},
        {"Elu", UnaryOp::kElu},            {"HardSigmoid", UnaryOp::kHardSigmoid},
        {"HardSwish", UnaryOp::kHardSwish}, {"Softplus", UnaryOp::kSoftplus}, {"Clip", UnaryOp::kClip},
        {"Selu", UnaryOp::kSelu},
    };
    return k;
}

const std::map<std::string, BinaryOp>& binary_ops() {
    static const std::map<std::string, BinaryOp> k = {
        {"Add", BinaryOp::kAdd}, {"Sub", BinaryOp::kSub}, {"Mul", BinaryOp::kMul}, {"Div", BinaryOp::kDiv},
        {"Pow", BinaryOp::kPow}, {"Min", BinaryOp::kMin}, {"Max", BinaryOp::kMax}, {"PRelu", BinaryOp::kPRelu},
    };
    return k;
}

const std::map<std::string, int>& logic_ops() {
    static const std::map<std::string, int> k = {
        {"And", kLogicAnd},     {"Or", kLogicOr},
        {"Not", kLogicNot},     {"Equal", kLogicEqual},     {"Less", kLogicLess},
        {"Greater", kLogicGreater}, {"LessOrEqual", kLogicLessOrEqual}, {"GreaterOrEqual", kLogicGreaterOrEqual},
    };
    return k;
}

// dtypes the cast / comparison kernels read and write (mask_ops.cu); f16/bf16 only through the fp32 paths
bool castable(DataType t) { return t != DataType::kFloat16 && t != DataType::kBFloat16; }

bool is_copy_op(const std::string& op) {
    return op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze" || op == "Identity" ||
           op == "Dropout";
}

bool is_f32(const ops::TensorInfo& t) { return !t.present || t.dtype == DataType::kFloat32; }
bool is_int(const ops::TensorInfo& t) {
    return !t.present || t.dtype == DataType::kInt64 || t.dtype == DataType::kInt32;
}
bool rank_ok(const ops::TensorInfo& t) { return t.rank() <= kMaxDims; }
bool all_int_tail(const KernelNode& n) {  // shape/axes/starts inputs after the data input
    for (size_t i = 1; i < n.inputs.size(); ++i)
        if (!is_int(n.inputs[i])) return false;
    return true;
}

// Row-major strides of `in` broadcast to `out` (right-aligned, 0 on broadcast dims).
void fill_bcast(const Shape& in, const Shape& out, int64_t* strides) {
    std::vector<int64_t> s = ops::broadcast_strides(in, out);
    for (size_t i = 0; i < out.size(); ++i) strides[i] = s[i];
}

StridedDims dims_for(const Shape& out) {
    StridedDims d;
    d.rank = static_cast<int>(out.size());
    for (int i = 0; i < d.rank; ++i) d.shape[i] = out[i];
    std::vector<int64_t> st = contiguous_strides(out);
    for (int i = 0; i < d.rank; ++i) d.dst_strides[i] = st[i];
    return d;
}

void copy_d2d(const RunCtx& c, const DevTensor& src, DevTensor& dst) {
    if (src.data != dst.data && dst.bytes())
        KILN_CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, dst.bytes(), cudaMemcpyDeviceToDevice, c.stream), *c.node);
}

std::unique_ptr<DeviceKernel> fn(RunFn f, std::string name) {
    return std::make_unique<FnDeviceKernel>(std::move(f), std::move(name));
}

std::unique_ptr<DeviceKernel> make_unary(const KernelNode& n) {
    UnaryOp op = unary_ops().at(n.op_type);
    if (op == UnaryOp::kGelu && n.attrs.get_string("approximate", "none") == "tanh") op = UnaryOp::kGeluTanh;
    float alpha = 0.f, beta = 0.f;
    if (op == UnaryOp::kLeakyRelu) alpha = n.attrs.get_float("alpha", 0.01f);
    if (op == UnaryOp::kElu) alpha = n.attrs.get_float("alpha", 1.f);
    if (op == UnaryOp::kHardSigmoid) alpha = n.attrs.get_float("alpha", 0.2f), beta = n.attrs.get_float("beta", 0.5f);
    if (op == UnaryOp::kSelu)
        alpha = n.attrs.get_float("alpha", 1.67326319217681884765625f),
        beta = n.attrs.get_float("gamma", 1.05070102214813232421875f);
    bool clip = op == UnaryOp::kClip;
    if (clip) {
        alpha = -INFINITY, beta = INFINITY;
        if (n.inputs.size() > 1 && n.inputs[1].present) alpha = static_cast<float>(n.inputs[1].value->get_f64(0));
        if (n.inputs.size() > 2 && n.inputs[2].present) beta = static_cast<float>(n.inputs[2].value->get_f64(0));
    }
    return fn([=](const RunCtx& c, const In& in, const Out& out) {
        launch_unary_f32(op, in[0]->as<float>(), out[0]->as<float>(), out[0]->numel(), alpha, beta, c.stream);
    }, "unary_" + n.op_type + (op == UnaryOp::kGeluTanh ? "_tanh" : "") + "_f32");
}

std::unique_ptr<DeviceKernel> make_binary(const KernelNode& n) {
    BinaryOp op = binary_ops().at(n.op_type);
    return fn([=](const RunCtx& c, const In& in, const Out& out) {
        const Shape& os = out[0]->shape;
        StridedDims d = dims_for(os);
        int64_t bs[kMaxDims] = {};
        fill_bcast(in[0]->shape, os, d.src_strides);
        fill_bcast(in[1]->shape, os, bs);
        launch_binary_f32(op, in[0]->as<float>(), in[1]->as<float>(), out[0]->as<float>(), d, bs, out[0]->numel(),
                          c.stream);
    }, "binary_" + n.op_type + "_f32_bcast");
}

std::unique_ptr<DeviceKernel> make_logic(const KernelNode& n) {
    const int op = logic_ops().at(n.op_type);
    return fn([=](const RunCtx& c, const In& in, const Out& out) {
        const Shape& os = out[0]->shape;
        StridedDims d = dims_for(os);
        int64_t bs[kMaxDims] = {};
        fill_bcast(in[0]->shape, os, d.src_strides);
        if (in.size() > 1) fill_bcast(in[1]->shape, os, bs);
        launch_logic(op, in[0]->data, in.size() > 1 ? in[1]->data : nullptr, static_cast<int>(in[0]->dtype),
                     out[0]->as<uint8_t>(), d, bs, out[0]->numel(), c.stream);
    }, "logic_" + n.op_type + "_" + dtype_name(n.inputs[0].dtype) + "_bcast");
}

std::unique_ptr<DeviceKernel> make_where(const KernelNode& n) {
    return fn([=](const RunCtx& c, const In& in, const Out& out) {
        const Shape& os = out[0]->shape;
        StridedDims d = dims_for(os);
        int64_t as[kMaxDims] = {}, bs[kMaxDims] = {};
        fill_bcast(in[0]->shape, os, d.src_strides);
        fill_bcast(in[1]->shape, os, as);
        fill_bcast(in[2]->shape, os, bs);
        launch_where_f32(in[0]->as<uint8_t>(), in[1]->as<float>(), in[2]->as<float>(), out[0]->as<float>(), d, as,
                         bs, out[0]->numel(), c.stream);
    }, "where_f32_bcast");
}

std::unique_ptr<DeviceKernel> make_norm(const KernelNode& n) {
    const bool rms = n.op_type == "RMSNormalization";
    const int64_t axis_attr = n.attrs.get_int("axis", -1);
    const float eps = n.attrs.get_float("epsilon", 1e-5f);
    return fn([=](const RunCtx& c, const In& in, const Out& out) {
        const DevTensor& x = *in[0];
        int r = static_cast<int>(x.shape.size());
        int axis = static_cast<int>(axis_attr < 0 ? axis_attr + r : axis_attr);
        KILN_CHECK(axis >= 0 && axis < r, kInvalidModel, *c.node, ": axis ", axis_attr, " out of range");
        int64_t cols = 1;
        for (int i = axis; i < r; ++i) cols *= x.shape[i];
        int64_t rows = cols ? x.numel() / cols : 0;
        const float* scale = in[1]->as<float>();
        const float* bias = in.size() > 2 && in[2] ? in[2]->as<float>() : nullptr;
        Scratch scratch(c.stream, *c.node);
        auto expand = [&](const DevTensor& t) {  // scale/bias broadcast to the normalised shape
            Shape inner(x.shape.begin() + axis, x.shape.end());
            float* p = static_cast<float*>(scratch.get(cols * sizeof(float)));
            StridedDims d = dims_for(inner);
            fill_bcast(t.shape, inner, d.src_strides);
            launch_strided_copy(t.data, p, d, 4, c.stream);
            return p;
        };
        if (in[1]->numel() != cols) scale = expand(*in[1]);
        if (bias && in[2]->numel() != cols) bias = expand(*in[2]);
        launch_layer_norm_rowwise(x.data, low_type_of(x.dtype), scale, bias, out[0]->data,
                                  low_type_of(out[0]->dtype), rows, cols, eps, rms, c.stream);
    }, rms ? "rms_norm_rowwise" : "layer_norm_rowwise");
}

// EmbedLayerNorm(ids, table, scale, norm_bias, addend?) -> Y [, S]. The addend, without its leading 1s, is used in
// place when it equals the trailing dims of S (BERT's [S, H] position + token-type sum): row r reads addend row
// r % rows; other broadcasts are expanded to those dims first.
std::unique_ptr<DeviceKernel> make_embed_norm(const KernelNode& n) {
    const float eps = n.attrs.get_float("epsilon", 1e-5f);
    return fn([=](const RunCtx& c, const In& in, const Out& out) {
        EmbedNormArgs a;
        a.ids = in[0]->data;
        a.ids32 = in[0]->dtype == DataType::kInt32;
        a.table = in[1]->as<float>();
        a.vocab = in[1]->shape[0];
        a.cols = static_cast<int>(in[1]->shape[1]);
        a.gamma = in[2]->as<float>();
        a.beta = in[3]->as<float>();
        a.y = out[0]->data;
        a.y_type = low_type_of(out[0]->dtype);
        if (out.size() > 1 && out[1]) a.s = out[1]->data, a.s_type = low_type_of(out[1]->dtype);
        a.rows = in[0]->numel();
        a.eps = eps;
        Scratch scratch(c.stream, *c.node);
        if (in.size() > 4 && in[4]) {
            Shape b = in[4]->shape;
            while (!b.empty() && b.front() == 1) b.erase(b.begin());
            const Shape& ys = out[0]->shape;
            Shape tail(ys.end() - static_cast<std::ptrdiff_t>(std::min(b.size(), ys.size())), ys.end());
            if (tail.empty()) tail = {ys.back()};
            a.addend = in[4]->as<float>();
            if (b != tail) {  // broadcast within the trailing dims: expand once per run
                float* p = static_cast<float*>(scratch.get(shape_numel(tail) * sizeof(float)));
                StridedDims d = dims_for(tail);
                fill_bcast(in[4]->shape, tail, d.src_strides);
                launch_strided_copy(in[4]->data, p, d, 4, c.stream);
                a.addend = p;
            }
            a.addend_rows = a.cols ? shape_numel(tail) / a.cols : 1;
        }
        launch_embed_layer_norm(a, c.stream);
    }, "embed_layer_norm");
}

std::unique_ptr<DeviceKernel> make_softmax(const KernelNode& n) {
    const bool log = n.op_type == "LogSoftmax";
    const int64_t axis_attr = n.attrs.get_int("axis", -1);
    return fn([=](const RunCtx& c, const In& in, const Out& out) {
        const Shape& s = in[0]->shape;
        int r = static_cast<int>(s.size());
        int axis = static_cast<int>(axis_attr < 0 ? axis_attr + r : axis_attr);
        KILN_CHECK(axis >= 0 && axis < r, kInvalidModel, *c.node, ": axis ", axis_attr, " out of range");
        int64_t outer = 1, inner = 1;
        for (int i = 0; i < axis; ++i) outer *= s[i];
        for (int i = axis + 1; i < r; ++i) inner *= s[i];
        launch_softmax_f32(in[0]->as<float>(), out[0]->as<float>(), outer, s[axis], inner, log, c.stream);
    }, log ? "log_softmax_f32" : "softmax_f32");
}

std::unique_ptr<DeviceKernel> make_copy(const KernelNode& n) {
    return fn([](const RunCtx& c, const In& in, const Out& out) { copy_d2d(c, *in[0], *out[0]); },
              "copy_" + n.op_type);
}

std::unique_ptr<DeviceKernel> make_transpose(const KernelNode& n) {
    const std::vector<int64_t> perm_attr = n.attrs.get_ints("perm");
    return fn([=](const RunCtx& c, const In& in, const Out& out) {
        const Shape& is = in[0]->shape;
        int r = static_cast<int>(is.size());
        std::vector<int64_t> perm = perm_attr;
        if (perm.empty())
            for (int i = 0; i < r; ++i) perm.push_back(r - 1 - i);
        StridedDims d = dims_for(out[0]->shape);
        std::vector<int64_t> st = contiguous_strides(is);
        for (int i = 0; i < r; ++i) d.src_strides[i] = st[perm[i] < 0 ? perm[i] + r : perm[i]];
        launch_strided_copy(in[0]->data, out[0]->data, d, static_cast<int>(dtype_size(in[0]->dtype)), c.stream);
    }, "transpose_nd_strided");
}

std::unique_ptr<DeviceKernel> make_expand(const KernelNode& n) {
    return fn([](const RunCtx& c, const In& in, const Out& out) {
        StridedDims d = dims_for(out[0]->shape);
        fill_bcast(in[0]->shape, out[0]->shape, d.src_strides);
        launch_strided_copy(in[0]->data, out[0]->data, d, static_cast<int>(dtype_size(in[0]->dtype)), c.stream);
    }, "expand_strided");
}

// Concat (inputs -> slices of the output) and Split (slices of the input -> outputs) along one axis.
std::unique_ptr<DeviceKernel> make_concat_split(const KernelNode& n) {
    const bool concat = n.op_type == "Concat";
    const int64_t axis_attr = n.attrs.get_int("axis", 0);
    return fn([=](const RunCtx& c, const In& in, const Out& out) {
        const Shape& big = concat ? out[0]->shape : in[0]->shape;
        int r = static_cast<int>(big.size());
        int axis = static_cast<int>(axis_attr < 0 ? axis_attr + r : axis_attr);
        std::vector<int64_t> big_st = contiguous_strides(big);
        int64_t offset = 0;
        size_t parts = concat ? in.size() : out.size();
        for (size_t p = 0; p < parts; ++p) {
            const DevTensor* part = concat ? in[p] : out[p];
            if (!part || part->numel() == 0) continue;
            StridedDims d = dims_for(part->shape);
            char* big_ptr = static_cast<char*>(concat ? out[0]->data : in[0]->data) +
                            offset * big_st[axis] * dtype_size(part->dtype);
            for (int i = 0; i < r; ++i) d.src_strides[i] = big_st[i];
            if (concat) std::swap_ranges(d.src_strides, d.src_strides + r, d.dst_strides);  // small -> big
            launch_strided_copy(concat ? part->data : big_ptr, concat ? big_ptr : part->data, d,
                                static_cast<int>(dtype_size(part->dtype)), c.stream);
            offset += part->shape[axis];
        }
    }, concat ? "concat_strided" : "split_strided");
}

std::unique_ptr<DeviceKernel> make_slice(const KernelNode& n) {
    return fn([](const RunCtx& c, const In& in, const Out& out) {
        const Shape& is = in[0]->shape;
        int r = static_cast<int>(is.size());
        std::vector<int64_t> starts = host_ints(*in[1], c.stream, *c.node), ends = host_ints(*in[2], c.stream, *c.node);
        std::vector<int64_t> axes, steps;
        if (in.size() > 3 && in[3]) axes = host_ints(*in[3], c.stream, *c.node);
        else for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
        if (in.size() > 4 && in[4]) steps = host_ints(*in[4], c.stream, *c.node);
        else steps.assign(starts.size(), 1);
        std::vector<int64_t> st = contiguous_strides(is);
        StridedDims d = dims_for(out[0]->shape);
        for (int i = 0; i < r; ++i) d.src_strides[i] = st[i];
        int64_t base = 0;
        for (size_t i = 0; i < starts.size(); ++i) {
            int a = static_cast<int>(axes[i] < 0 ? axes[i] + r : axes[i]);
            ops::SliceAxis sa = ops::slice_axis(is[a], starts[i], ends[i], steps[i]);
            base += sa.start * st[a];
            d.src_strides[a] = st[a] * sa.step;
        }
        size_t es = dtype_size(in[0]->dtype);
        launch_strided_copy(static_cast<const char*>(in[0]->data) + base * es, out[0]->data, d, static_cast<int>(es),
                            c.stream);
    }, "slice_strided");
}

std::unique_ptr<DeviceKernel> make_gather(const KernelNode& n) {
    const int64_t axis_attr = n.attrs.get_int("axis", 0);
    return fn([=](const RunCtx& c, const In& in, const Out& out) {
        const Shape& xs = in[0]->shape;
        int r = static_cast<int>(xs.size());
        int axis = static_cast<int>(axis_attr < 0 ? axis_attr + r : axis_attr);
        int64_t outer = 1, inner = 1;
        for (int i = 0; i < axis; ++i) outer *= xs[i];
        for (int i = axis + 1; i < r; ++i) inner *= xs[i];
        launch_gather(in[0]->data, in[1]->as<int64_t>(), out[0]->data, outer, xs[axis], in[1]->numel(), inner,
                      static_cast<int>(dtype_size(in[0]->dtype)), c.stream);
    }, "gather_axis");
}

std::unique_ptr<DeviceKernel> make_pool(const KernelRequest& r) {
    const KernelNode& n = r.node;
    const bool x_low = r.x_low_nhwc, y_low = r.y_low_nhwc;
    const LowType low = r.low;
    if (n.op_type == "GlobalAveragePool")
        return fn([](const RunCtx& c, const In& in, const Out& out) {
            const Shape& s = in[0]->shape;
            int64_t nc = s[0] * s[1];
            launch_global_avg_pool_f32_nchw(in[0]->as<float>(), out[0]->as<float>(), nc, nc ? in[0]->numel() / nc : 0,
                                            c.stream);
        }, "global_avg_pool_f32_nchw");
    const bool is_max = n.op_type == "MaxPool";
    const std::vector<int64_t> k = n.attrs.get_ints("kernel_shape"), strides = n.attrs.get_ints("strides", {1, 1}),
                               pads = n.attrs.get_ints("pads", {0, 0, 0, 0}),
                               dil = n.attrs.get_ints("dilations", {1, 1});
    const std::string auto_pad = n.attrs.get_string("auto_pad", "NOTSET");
    const bool cip = n.attrs.get_int("count_include_pad", 0) != 0;
    return fn([=](const RunCtx& c, const In& in, const Out& out) {
        PoolDims p;
        const Shape &is = in[0]->shape, &os = out[0]->shape;
        p.n = is[0], p.c = is[1], p.h = is[2], p.w = is[3], p.oh = os[2], p.ow = os[3];
        p.kh = static_cast<int>(k[0]), p.kw = static_cast<int>(k[1]);
        p.sh = static_cast<int>(strides[0]), p.sw = static_cast<int>(strides[1]);
        p.dh = static_cast<int>(dil[0]), p.dw = static_cast<int>(dil[1]);
        p.ph = static_cast<int>(pads[0]), p.pw = static_cast<int>(pads[1]);
        if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
            auto begin = [&](int64_t in_sz, int64_t out_sz, int kk, int s, int dd) {
                int64_t total = std::max<int64_t>(0, (out_sz - 1) * s + (kk - 1) * dd + 1 - in_sz);
                return static_cast<int>(auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2);
            };
            p.ph = begin(p.h, p.oh, p.kh, p.sh, p.dh);
            p.pw = begin(p.w, p.ow, p.kw, p.sw, p.dw);
        } else if (auto_pad == "VALID") {
            p.ph = p.pw = 0;
        }
        p.max = is_max;
        p.count_include_pad = cip;
        if (x_low || y_low) launch_pool2d_chain(in[0]->data, x_low, out[0]->data, y_low, low, p, c.stream);
        else launch_pool2d_f32_nchw(in[0]->as<float>(), out[0]->as<float>(), p, c.stream);
    }, cat(is_max ? "max" : "avg", "_pool2d_", x_low || y_low ? cat(low_name(low), "_chain", x_low ? "_in" : "",
                                                                     y_low ? "_out" : "")
                                                            : std::string("f32_nchw")));
}

}  // namespace

bool supports_simple(const KernelNode& n) {
    const std::string& op = n.op_type;
    if (n.inputs.empty() || !rank_ok(n.inputs[0])) return false;
    for (const auto& o : n.outputs)
        if (!rank_ok(o)) return false;
    // data movement copies elements of any dtype by size, but int32/int64 tensors (shapes, indices) stay on the host
    // like TensorRT's shape tensors: their consumers (Reshape, Slice ...) read them there without a device sync
    const DataType dt = n.inputs[0].dtype;
    const bool int_data = dt == DataType::kInt64 || dt == DataType::kInt32;
    auto same_dtype_out = [&] {
        for (const auto& o : n.outputs)
            if (o.dtype != dt) return false;
        return true;
    };
    if (is_copy_op(op)) return !int_data && n.outputs.size() == 1 && same_dtype_out() && all_int_tail(n);
    if (op == "Transpose" || op == "Expand" || op == "Split" || op == "Slice")
        return !int_data && same_dtype_out() && all_int_tail(n);
    if (op == "Concat") {
        if (int_data) return false;
        for (const auto& t : n.inputs)
            if (t.present && (t.dtype != dt || !rank_ok(t))) return false;
        return same_dtype_out();
    }
    if (op == "Gather") return !int_data && same_dtype_out() && n.inputs[1].dtype == DataType::kInt64;
    if (logic_ops().count(op)) {
        bool logical = op == "And" || op == "Or" || op == "Not";
        for (const auto& t : n.inputs)
            if (!t.present || t.dtype != dt || !rank_ok(t) || !castable(t.dtype)) return false;
        return n.outputs[0].dtype == DataType::kBool && (!logical || dt == DataType::kBool);
    }
    if (op == "Cast") {
        DataType to = n.outputs[0].dtype;
        if (to == DataType::kFloat32) return dt != DataType::kBFloat16;
        return castable(dt) && castable(to);
    }
    for (const auto& o : n.outputs)
        if (o.dtype != DataType::kFloat32) return false;
    auto all_f32 = [&](size_t from, size_t to) {
        for (size_t i = from; i < n.inputs.size() && i < to; ++i)
            if (!is_f32(n.inputs[i]) || !rank_ok(n.inputs[i])) return false;
        return true;
    };
    if (unary_ops().count(op)) {
        std::string approx = op == "Gelu" ? n.attrs.get_string("approximate", "none") : "none";
        if (approx != "none" && approx != "tanh") return false;
        if (op == "Clip")
            for (size_t i = 1; i < n.inputs.size(); ++i)
                if (n.inputs[i].present && !n.inputs[i].value) return false;  // min/max must be constants
        return is_f32(n.inputs[0]) && n.inputs[0].present;
    }
    if (binary_ops().count(op)) return n.inputs.size() == 2 && all_f32(0, 2);
    if (op == "Where") return n.inputs[0].dtype == DataType::kBool && all_f32(1, 3);
    if (op == "LayerNormalization" || op == "RMSNormalization") return all_f32(0, 3) && n.outputs.size() == 1;
    if (op == "EmbedLayerNorm")
        return is_int(n.inputs[0]) && n.inputs[1].rank() == 2 && all_f32(1, 5);
    if (op == "Softmax" || op == "LogSoftmax") return all_f32(0, 1);
    if (op == "Attention") return all_f32(0, 3) && supports_attention(n);
    if (op == "MaxPool" || op == "AveragePool")
        return is_f32(n.inputs[0]) && n.inputs[0].rank() == 4 && n.outputs.size() == 1 &&
               n.attrs.get_int("storage_order", 0) == 0 && n.attrs.get_ints("kernel_shape").size() == 2;
    if (op == "GlobalAveragePool") return is_f32(n.inputs[0]) && n.inputs[0].rank() >= 3;
    if (op == "FusedElementwise") return supports_fused_elementwise(n);
    return false;
}

LowIo low_io(const KernelNode& n, LowType low) {
    LowIo io;
    if (low == LowType::kF32 || n.outputs.empty() || n.outputs[0].dtype != DataType::kFloat32) return io;
    const std::string& op = n.op_type;
    if (op == "MatMul" || op == "FusedMatMul") {
        io.in = 0b1011;  // A, B and the residual Z; the bias stays fp32 (a weight)
        io.out = 1;
    } else if (op == "FusedMatMulNorm") {
        io.in = 0b1001;  // A and the residual Z (B, the bias, scale and norm bias are weights)
        io.out = 0b11;   // Y and S
    } else if (op == "Gemm") {
        io.in = 0b11;
        io.out = n.inputs.size() > 2 && n.inputs[2].present ? 0 : 1;  // C is broadcast into an fp32 Y
    } else if (op == "LayerNormalization" || op == "RMSNormalization") {
        io.in = 1;
        io.out = 1;
    } else if (op == "EmbedLayerNorm") {
        io.out = 0b11;  // Y and S (the inputs are indices and weights)
    } else if (op == "FusedElementwise") {
        for (size_t i = 0; i < n.inputs.size(); ++i)
            if (n.inputs[i].dtype == DataType::kFloat32) io.in |= 1u << i;
        io.out = 1;
    } else if (op == "Attention" && attention_on_tensor_cores(n, low)) {
        io.in = 0b111;
        io.out = 1;
    } else if (is_copy_op(op) || op == "Transpose") {
        io.in = 1;
        io.out = 1;
        io.same_type = true;
    }
    return io;
}

std::unique_ptr<DeviceKernel> make_simple(const KernelRequest& r) {
    const KernelNode& n = r.node;
    const std::string& op = n.op_type;
    if (unary_ops().count(op)) return make_unary(n);
    if (binary_ops().count(op)) return make_binary(n);
    if (op == "Where") return make_where(n);
    if (op == "LayerNormalization" || op == "RMSNormalization") return make_norm(n);
    if (op == "EmbedLayerNorm") return make_embed_norm(n);
    if (op == "Softmax" || op == "LogSoftmax") return make_softmax(n);
    if (op == "Attention") return make_attention(r);
    if (is_copy_op(op)) return make_copy(n);
    if (op == "Transpose") return make_transpose(n);
    if (op == "Expand") return make_expand(n);
    if (op == "Concat" || op == "Split") return make_concat_split(n);
    if (op == "Slice") return make_slice(n);
    if (op == "Gather") return make_gather(n);
    if (op == "MaxPool" || op == "AveragePool" || op == "GlobalAveragePool") return make_pool(r);
    if (op == "FusedElementwise") return make_fused_elementwise(n);
    if (logic_ops().count(op)) return make_logic(n);
    if (op == "Cast" && n.outputs[0].dtype == DataType::kFloat32)
        return fn([](const RunCtx& c, const In& in, const Out& out) {
            launch_cast_to_f32(in[0]->data, static_cast<int>(in[0]->dtype), out[0]->as<float>(), out[0]->numel(),
                               c.stream);
        }, "cast_to_f32");
    if (op == "Cast")
        return fn([](const RunCtx& c, const In& in, const Out& out) {
            launch_cast(in[0]->data, static_cast<int>(in[0]->dtype), out[0]->data, static_cast<int>(out[0]->dtype),
                        out[0]->numel(), c.stream);
        }, cat("cast_", dtype_name(n.inputs[0].dtype), "_to_", dtype_name(n.outputs[0].dtype)));
    KILN_FAIL(kUnsupported, n.where(), ": no CUDA kernel");
}

}  // namespace kiln::cuda
