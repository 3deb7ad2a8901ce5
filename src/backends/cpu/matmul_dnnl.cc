// MatMul / FusedMatMul / Gemm (float32) through the oneDNN matmul primitive: act(A @ B + bias + Z) with the bias in
// the primitive, Z as a sum post-op and the activation as an eltwise post-op. A constant B (the usual weights) is
// reordered once into the packed layout oneDNN prefers and the leading dims of A are folded into M; otherwise the
// batch dims collapse to one (oneDNN broadcasts a batch of 1). FusedMatMul's `trans_b`=1 takes a 2-D B as [N, K].
// With --bf16 (node precision "bf16") a constant B is packed as bf16 once and A is converted to bf16 per run
// (bf16.h); oneDNN accumulates in fp32 and writes fp32, bias and post-ops stay fp32. A run-time B stays fp32.
#include <cstring>

#include "src/backends/cpu/bf16.h"
#include "src/backends/cpu/cpu_backend.h"
#include "src/backends/cpu/dnnl_util.h"
#include "src/backends/cpu/thread_pool.h"

namespace kiln::backends::cpu {

namespace {

using dnnl::memory;

int64_t prod(const Shape& s, size_t b, size_t e) {
    int64_t p = 1;
    for (size_t i = b; i < e; ++i) p *= s[i];
    return p;
}

struct MatMulPrepared {
    dnnl::matmul prim;
    memory::desc a_md, b_md, c_md, scratch_md;
    memory weights, bias;
    int threads = 1;  // tiny products run on one thread
    bool bf16 = false;  // A is converted to bf16 before the primitive runs
    std::string impl;
};

constexpr double kMinParallelMacs = 2e5;

class MatMulKernel : public Kernel {
public:
    MatMulKernel(const KernelNode& node, bool gemm) : where_(node.where()), gemm_(gemm) {
        if (gemm) {
            trans_a_ = node.attrs.get_int("transA", 0) != 0;
            trans_b_ = node.attrs.get_int("transB", 0) != 0;
        } else {
            act_ = Activation::from_attrs(node.attrs, where_);
            has_residual_ = node.inputs.size() > 3 && node.inputs[3].present;
            trans_b_ = node.attrs.get_int("trans_b", 0) != 0;
        }
        if (node.inputs[1].value) weights_ = *node.inputs[1].value;
        bf16_ = node.precision == "bf16" && weights_.defined();
        if (node.inputs.size() > 2 && node.inputs[2].present) {
            bias_ = node.inputs[2].value->clone();
            if (gemm) {
                float beta = node.attrs.get_float("beta", 1.f);
                for (int64_t i = 0; i < bias_.numel(); ++i) bias_.data<float>()[i] *= beta;
            }
        }
        bool static_shapes = is_static(node.inputs[0].dims) && is_static(node.inputs[1].dims);
        if (static_shapes) {
            Shape as, bs;
            for (const Dim& d : node.inputs[0].dims) as.push_back(d.value);
            for (const Dim& d : node.inputs[1].dims) bs.push_back(d.value);
            name_ = prepared(as, bs, physical_cores())->impl;
        }
    }

    std::string describe() const override {
        return cat(gemm_ ? "gemm" : "matmul", bf16_ ? "_bf16f32acc_dnnl" : "_f32_dnnl",
                   name_.empty() ? "" : "(" + name_ + ")");
    }
    bool writes_all_outputs() const override { return true; }

    void execute(const KernelArgs& a) const override {
        const Tensor& at = *a.inputs[0];
        const Tensor& bt = *a.inputs[1];
        Tensor& y = *a.outputs[0];
        std::shared_ptr<const MatMulPrepared> p = prepared(at.shape(), bt.shape(), a.num_threads);
        if (has_residual_) {
            const Tensor* z = a.inputs[3];
            KILN_CHECK(z->shape() == y.shape(), kInvalidArgument, where_, ": residual of shape ", shape_str(z->shape()),
                       " differs from the output ", shape_str(y.shape()));
            // the plan usually puts Y over a Z that dies here (LayoutCaps::overwrite_input): nothing to copy
            if (y.raw() != z->raw()) std::memcpy(y.raw(), z->raw(), y.bytes());
        }
        dnnl::engine& eng = dnnl_engine();
        std::unordered_map<int, memory> args;
        if (p->bf16) {
            auto* a16 = static_cast<uint16_t*>(thread_buffer(2, at.numel() * sizeof(uint16_t)));
            f32_to_bf16(at.data<float>(), a16, at.numel(), p->threads);
            args[DNNL_ARG_SRC] = memory(p->a_md, eng, a16);
        } else {
            args[DNNL_ARG_SRC] = memory(p->a_md, eng, const_cast<void*>(at.raw()));
        }
        args[DNNL_ARG_WEIGHTS] = weights_.defined() ? p->weights : memory(p->b_md, eng, const_cast<void*>(bt.raw()));
        if (bias_.defined()) args[DNNL_ARG_BIAS] = p->bias;
        args[DNNL_ARG_DST] = memory(p->c_md, eng, y.raw());
        dnnl_execute(p->prim, p->scratch_md, args, p->threads);
    }

private:
    std::shared_ptr<const MatMulPrepared> prepared(const Shape& as, const Shape& bs, int threads) const {
        std::vector<int64_t> key = as;
        key.push_back(-1);
        key.insert(key.end(), bs.begin(), bs.end());
        key.push_back(threads);
        return cache_.get(key, [&] { return prepare(as, bs, threads); });
    }

    std::shared_ptr<const MatMulPrepared> prepare(const Shape& as, const Shape& bs, int threads) const {
        const size_t ra = as.size(), rb = bs.size();
        memory::dims a_dims, a_strides, b_dims, b_strides, c_dims;
        int64_t k = trans_a_ ? as[0] : as[ra - 1];
        int64_t n = trans_b_ ? bs[0] : bs[rb - 1];
        int64_t bb = prod(bs, 0, rb - 2);
        if (bb == 1) {  // B is one matrix: fold every leading dim of A into M
            int64_t m = trans_a_ ? as[1] : prod(as, 0, ra - 1);
            a_dims = {m, k};
            a_strides = trans_a_ ? memory::dims{1, m} : memory::dims{k, 1};
            b_dims = {k, n};
            b_strides = trans_b_ ? memory::dims{1, k} : memory::dims{n, 1};
            c_dims = {m, n};
        } else {
            int64_t ba = prod(as, 0, ra - 2), m = as[ra - 2];
            KILN_CHECK(ba == 1 || ba == bb, kUnsupported, where_, ": batch dims of ", shape_str(as), " and ",
                       shape_str(bs), " need a general broadcast");
            a_dims = {ba, m, k};
            a_strides = {m * k, k, 1};
            b_dims = {bb, k, n};
            b_strides = {k * n, n, 1};
            c_dims = {bb, m, n};
        }
        double macs = static_cast<double>(shape_numel(Shape(c_dims.begin(), c_dims.end()))) * k;
        if (macs < kMinParallelMacs) threads = 1;
        set_dnnl_threads(threads);
        auto f32 = memory::data_type::f32;
        memory::desc b_user(b_dims, f32, b_strides);
        memory::desc c_md = plain_f32(c_dims);
        memory::dims bias_dims(c_dims.size(), 1);
        bias_dims.back() = n;
        dnnl::post_ops ops;
        if (has_residual_) ops.append_sum(1.f);
        KILN_CHECK(append_activation(ops, act_), kUnsupported, where_, ": activation not supported by oneDNN");
        dnnl::primitive_attr attr = make_attr(ops);
        auto make_pd = [&](memory::data_type t) {
            memory::desc a_md(a_dims, t, a_strides);
            memory::desc b_md = weights_.defined() ? memory::desc(b_dims, t, memory::format_tag::any) : b_user;
            auto desc = bias_.defined() ? dnnl::matmul::desc(a_md, b_md, plain_f32(bias_dims), c_md)
                                        : dnnl::matmul::desc(a_md, b_md, c_md);
            return dnnl::matmul::primitive_desc(desc, attr, dnnl_engine());
        };
        bool bf16 = bf16_;
        dnnl::matmul::primitive_desc pd = make_pd(bf16 ? memory::data_type::bf16 : f32);
        // no bf16 kernel for this case (oneDNN's reference one would be far slower): fp32
        if (bf16 && std::string(pd.impl_info_str()).rfind("ref", 0) == 0) {
            bf16 = false;
            pd = make_pd(f32);
        }
        auto p = std::make_shared<MatMulPrepared>();
        p->prim = dnnl::matmul(pd);
        p->a_md = pd.src_desc();
        p->b_md = b_user;
        p->bf16 = bf16;
        p->c_md = c_md;
        p->scratch_md = pd.scratchpad_desc();
        p->impl = cat(pd.impl_info_str(), bf16_ && !bf16 ? ",fp32_fallback" : "");
        p->threads = threads;
        dnnl::engine& eng = dnnl_engine();
        if (weights_.defined()) {
            memory user_w(b_user, eng, const_cast<void*>(weights_.raw()));
            p->weights = memory(pd.weights_desc(), eng);
            std::unordered_map<int, memory> wargs = {{DNNL_ARG_FROM, user_w}, {DNNL_ARG_TO, p->weights}};
            dnnl_execute(dnnl::reorder(user_w, p->weights), memory::desc(), wargs, threads);
        }
        if (bias_.defined()) {
            p->bias = memory(plain_f32(bias_dims), eng);
            std::memcpy(p->bias.get_data_handle(), bias_.raw(), bias_.bytes());
        }
        return p;
    }

    std::string where_;
    bool gemm_ = false, trans_a_ = false, trans_b_ = false, has_residual_ = false, bf16_ = false;
    Activation act_;
    Tensor weights_, bias_;
    std::string name_;
    ShapeCache<MatMulPrepared> cache_;
};

// The last dim of `t` is n and every other dim is 1 (a bias row).
bool is_row(const ops::TensorInfo& t, const Dim& n) {
    if (!t.value || t.rank() < 1 || !(t.dims.back() == n) || !n.is_static()) return false;
    for (int i = 0; i + 1 < t.rank(); ++i)
        if (!(t.dims[i] == Dim(1))) return false;
    return true;
}

bool batch_ok(const SymShape& a, const SymShape& b) {
    // B one matrix, or A's batch all ones, or equal batch dims
    auto all_ones = [](const SymShape& s) {
        for (size_t i = 0; i + 2 < s.size(); ++i)
            if (!(s[i] == Dim(1))) return false;
        return true;
    };
    if (all_ones(b) || all_ones(a)) return true;
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i + 2 < a.size(); ++i)
        if (!(a[i] == b[i]) || (!a[i].is_static() && a[i].symbol.empty())) return false;
    return true;
}

}  // namespace

bool supports_matmul(const KernelNode& node) {
    const ops::TensorInfo &a = node.inputs[0], &b = node.inputs[1];
    if (a.rank() < 2 || b.rank() < 2 || !batch_ok(a.dims, b.dims)) return false;
    const bool trans_b = node.op_type == "FusedMatMul" && node.attrs.get_int("trans_b", 0) != 0;
    if (trans_b && b.rank() != 2) return false;
    const Dim& n = trans_b ? b.dims[0] : b.dims.back();
    if (node.inputs.size() > 2 && node.inputs[2].present && !is_row(node.inputs[2], n)) return false;
    if (node.inputs.size() > 3 && node.inputs[3].present && !(node.inputs[3].dims == node.outputs[0].dims))
        return false;
    return true;
}

bool supports_gemm(const KernelNode& node) {
    if (node.attrs.get_float("alpha", 1.f) != 1.f || !node.inputs[1].value) return false;
    if (node.inputs[0].rank() != 2 || node.inputs[1].rank() != 2) return false;
    const Dim& n = node.attrs.get_int("transB", 0) ? node.inputs[1].dims[0] : node.inputs[1].dims[1];
    if (node.inputs.size() > 2 && node.inputs[2].present) {
        const ops::TensorInfo& c = node.inputs[2];
        bool row = c.value && c.value->numel() == n.value && (c.rank() == 1 || (c.rank() == 2 && c.dims[0] == Dim(1)));
        if (!row) return false;
    }
    return true;
}

std::unique_ptr<Kernel> make_cpu_matmul(const KernelNode& node) {
    if (matmul_is_gemv(node)) return make_cpu_matmul_gemv(node);
    return std::make_unique<MatMulKernel>(node, false);
}

LayoutCaps layout_caps_matmul(const KernelNode& node) {
    LayoutCaps c;  // plain values; the residual's sum post-op accumulates onto Y in place
    if (node.op_type == "FusedMatMul" && node.inputs.size() > 3 && node.inputs[3].present) c.overwrite_input = 3;
    return c;
}
std::unique_ptr<Kernel> make_cpu_gemm(const KernelNode& node) { return std::make_unique<MatMulKernel>(node, true); }

}  // namespace kiln::backends::cpu
