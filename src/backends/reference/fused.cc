// Reference kernels of the optimiser's fused ops. They reuse the plain reference kernels for the main op and
// apply the epilogue (bias, residual, activation) afterwards: the oracle stays obviously right.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "src/backends/activation.h"
#include "src/backends/attention_geometry.h"
#include "src/backends/expand_depthwise.h"
#include "src/backends/reference/reference_backend.h"
#include "src/ops/shape_utils.h"

namespace kiln::backends::reference {

namespace {

AttributeMap without_epilogue(const AttributeMap& attrs) {
    AttributeMap out = attrs;
    for (const char* k : {"activation", "activation_alpha", "activation_beta", "trans_b"}) out.erase(k);
    return out;
}

void check_f32(const KernelNode& node, size_t count) {
    for (size_t i = 0; i < node.inputs.size() && i < count; ++i)
        KILN_CHECK(!node.inputs[i].present || node.inputs[i].dtype == DataType::kFloat32, kUnsupported, node.where(),
                   ": the reference fused kernel supports float32 only, got ", dtype_name(node.inputs[i].dtype),
                   " for input ", i);
}

// out += broadcast(addend), then act(out)
void epilogue(Tensor& out, const Tensor* addend, const Activation& act) {
    float* y = out.data<float>();
    int64_t n = out.numel();
    if (addend) {
        const float* z = addend->data<float>();
        if (addend->shape() == out.shape()) {
            for (int64_t i = 0; i < n; ++i) y[i] += z[i];
        } else {
            std::vector<int64_t> zs = ops::broadcast_strides(addend->shape(), out.shape());
            const Shape& shape = out.shape();
            std::vector<int64_t> idx(shape.size(), 0);
            for (int64_t i = 0; i < n; ++i) {
                int64_t off = 0;
                for (size_t d = 0; d < shape.size(); ++d) off += idx[d] * zs[d];
                y[i] += z[off];
                for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
                    if (++idx[d] < shape[d]) break;
                    idx[d] = 0;
                }
            }
        }
    }
    if (act.kind != ActivationKind::kNone)
        for (int64_t i = 0; i < n; ++i) y[i] = act.apply(y[i]);
}

// The reference LayerNormalization over the last axis of a fused node's sum (`epsilon` from the node).
std::shared_ptr<Kernel> sum_norm(const KernelNode& node, const ops::TensorInfo& sum, const ops::TensorInfo& scale,
                                 const ops::TensorInfo& bias) {
    const std::string ln_op = "LayerNormalization";
    AttributeMap ln_attrs;
    ln_attrs.set("axis", int64_t{-1});
    ln_attrs.set("epsilon", node.attrs.get_float("epsilon", 1e-5f));
    return make_ref_LayerNormalization(KernelNode{node.name, ln_op, ln_attrs, {sum, scale, bias}, {node.outputs[0]}});
}

// Where the sum goes: the node's optional second output, else `own` (allocated like output 0).
Tensor* sum_output(const KernelArgs& a, Tensor& own) {
    if (a.outputs.size() > 1 && a.outputs[1]) return a.outputs[1];
    own = Tensor(DataType::kFloat32, a.outputs[0]->shape());
    return &own;
}

}  // namespace

std::unique_ptr<Kernel> make_ref_FusedConv(const KernelNode& node) {
    check_f32(node, 4);
    AttributeMap conv_attrs = without_epilogue(node.attrs);
    KernelNode conv{node.name, node.op_type, conv_attrs, node.inputs, node.outputs};
    conv.inputs.resize(std::min<size_t>(conv.inputs.size(), 3));
    std::shared_ptr<Kernel> inner = make_ref_Conv(conv);
    Activation act = Activation::from_attrs(node.attrs, node.where());
    std::string name = "fused_" + inner->describe();
    return make_kernel(
        [=](const KernelArgs& a) {
            KernelArgs c = a;
            const Tensor* residual = a.inputs.size() > 3 ? a.inputs[3] : nullptr;
            c.inputs.resize(std::min<size_t>(a.inputs.size(), 3));
            inner->execute(c);
            epilogue(*a.outputs[0], residual, act);
        },
        name);
}

namespace {

// y[n, c, :] *= sigmoid(Be[c] + sum_j We[c, j] h[j]),  h[j] = act(Br[j] + sum_c Wr[j, c] mean(y[n, c, :]))
void squeeze_excite(Tensor& y, const Tensor& wr, const Tensor& br, const Tensor& we, const Tensor& be,
                    const Activation& act) {
    const int64_t c = y.dim(1), hw = y.dim(2) * y.dim(3), cr = wr.dim(0);
    std::vector<double> mean(c);
    std::vector<float> h(cr);
    for (int64_t n = 0; n < y.dim(0); ++n) {
        float* yn = y.data<float>() + n * c * hw;
        for (int64_t i = 0; i < c; ++i) {
            double s = 0;
            for (int64_t p = 0; p < hw; ++p) s += yn[i * hw + p];
            mean[i] = s / static_cast<double>(hw);
        }
        for (int64_t j = 0; j < cr; ++j) {
            double s = br.data<float>()[j];
            for (int64_t i = 0; i < c; ++i) s += static_cast<double>(wr.data<float>()[j * c + i]) * mean[i];
            h[j] = act.apply(static_cast<float>(s));
        }
        for (int64_t i = 0; i < c; ++i) {
            double s = be.data<float>()[i];
            for (int64_t j = 0; j < cr; ++j) s += static_cast<double>(we.data<float>()[i * cr + j]) * h[j];
            const float gate = static_cast<float>(1.0 / (1.0 + std::exp(-s)));
            for (int64_t p = 0; p < hw; ++p) yn[i * hw + p] *= gate;
        }
    }
}

}  // namespace

// The expand and the depthwise convolution one after the other, through a temporary M (then the squeeze-excite
// block, when the node has one, or the projection through a temporary D, when it has that).
std::unique_ptr<Kernel> make_ref_FusedExpandDepthwise(const KernelNode& node) {
    check_f32(node, 12);
    const std::string conv_op = "FusedConv";
    const AttributeMap ea = expand_conv_attrs(node.attrs), da = depthwise_conv_attrs(node.attrs);
    ops::TensorInfo mid = node.inputs[0];
    mid.value = nullptr;
    mid.dims[1] = node.inputs[1].dims[0];
    KernelNode en{node.name, conv_op, ea, {node.inputs[0], node.inputs[1], node.inputs[2]}, {mid}};
    const bool proj = node.inputs.size() > 10 && node.inputs[9].present;
    ops::TensorInfo dinfo = node.outputs[0];  // the depthwise output: Y's shape with C channels
    dinfo.dims[1] = node.inputs[1].dims[0];
    KernelNode dn{
        node.name, conv_op, da, {mid, node.inputs[3], node.inputs[4]}, proj ? std::vector{dinfo} : node.outputs};
    std::shared_ptr<Kernel> expand = make_ref_FusedConv(en), dw = make_ref_FusedConv(dn), project;
    if (proj) {
        KernelNode pn{node.name, conv_op, AttributeMap{}, {dinfo, node.inputs[9], node.inputs[10]}, node.outputs};
        if (node.inputs.size() > 11 && node.inputs[11].present) pn.inputs.push_back(node.inputs[11]);
        project = make_ref_FusedConv(pn);
    }
    const int64_t channels = node.inputs[1].value ? node.inputs[1].value->dim(0) : 0;
    const bool se = node.inputs.size() > 8 && node.inputs[5].present;
    const Activation se_act = Activation::from_attrs(se_reduce_attrs(node.attrs), node.where());
    return make_kernel(
        [=](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            const int64_t c = channels ? channels : a.inputs[1]->dim(0);
            Tensor m(DataType::kFloat32, {x.dim(0), c, x.dim(2), x.dim(3)});
            KernelArgs e{{a.inputs[0], a.inputs[1], a.inputs[2]}, {&m}, a.num_threads};
            expand->execute(e);
            const Tensor& y = *a.outputs[0];
            Tensor dbuf = proj ? Tensor(DataType::kFloat32, {y.dim(0), c, y.dim(2), y.dim(3)}) : Tensor();
            KernelArgs d{{&m, a.inputs[3], a.inputs[4]}, a.outputs, a.num_threads};
            if (proj) d.outputs = {&dbuf};
            dw->execute(d);
            if (se) squeeze_excite(*a.outputs[0], *a.inputs[5], *a.inputs[6], *a.inputs[7], *a.inputs[8], se_act);
            if (proj) {
                KernelArgs p{{&dbuf, a.inputs[9], a.inputs[10]}, a.outputs, a.num_threads};
                if (a.inputs.size() > 11 && a.inputs[11]) p.inputs.push_back(a.inputs[11]);
                project->execute(p);
            }
        },
        "fused_expand_" + dw->describe());
}

std::unique_ptr<Kernel> make_ref_FusedMatMul(const KernelNode& node) {
    check_f32(node, 4);
    AttributeMap mm_attrs = without_epilogue(node.attrs);
    KernelNode mm{node.name, node.op_type, mm_attrs, node.inputs, node.outputs};
    mm.inputs.resize(2);
    const bool trans_b = node.attrs.get_int("trans_b", 0) != 0;  // B is [N, K]: transposed before the product
    if (trans_b) {
        KILN_CHECK(mm.inputs[1].rank() == 2, kUnsupported, node.where(), ": trans_b=1 needs a 2-D B");
        std::swap(mm.inputs[1].dims[0], mm.inputs[1].dims[1]);
        mm.inputs[1].value = nullptr;
    }
    std::shared_ptr<Kernel> inner = make_ref_MatMul(mm);
    Activation act = Activation::from_attrs(node.attrs, node.where());
    return make_kernel(
        [=](const KernelArgs& a) {
            KernelArgs c = a;
            c.inputs.resize(2);
            Tensor bt;
            if (trans_b) {
                const Tensor& b = *a.inputs[1];
                const int64_t rows = b.dim(0), cols = b.dim(1);
                bt = Tensor(DataType::kFloat32, {cols, rows});
                for (int64_t i = 0; i < rows; ++i)
                    for (int64_t j = 0; j < cols; ++j) bt.data<float>()[j * rows + i] = b.data<float>()[i * cols + j];
                c.inputs[1] = &bt;
            }
            inner->execute(c);
            const Tensor* bias = a.inputs.size() > 2 ? a.inputs[2] : nullptr;
            const Tensor* residual = a.inputs.size() > 3 ? a.inputs[3] : nullptr;
            if (residual) epilogue(*a.outputs[0], bias, Activation{});
            epilogue(*a.outputs[0], residual ? residual : bias, act);
        },
        "fused_matmul_f32_ref");
}

// S = FusedMatMul(A, B, bias, Z), then the reference LayerNormalization of S over the last axis.
std::unique_ptr<Kernel> make_ref_FusedMatMulNorm(const KernelNode& node) {
    check_f32(node, 6);
    AttributeMap mm_attrs = node.attrs;
    mm_attrs.erase("epsilon");
    ops::TensorInfo sum = node.outputs[0];
    sum.value = nullptr;
    const std::string mm_op = "FusedMatMul";
    KernelNode mm{node.name, mm_op, mm_attrs, {node.inputs[0], node.inputs[1], node.inputs[2], node.inputs[3]}, {sum}};
    std::shared_ptr<Kernel> matmul = make_ref_FusedMatMul(mm);
    std::shared_ptr<Kernel> norm = sum_norm(node, sum, node.inputs[4], node.inputs[5]);
    return make_kernel(
        [=](const KernelArgs& a) {
            Tensor s_own;
            Tensor* s = sum_output(a, s_own);
            matmul->execute({{a.inputs[0], a.inputs[1], a.inputs[2], a.inputs[3]}, {s}, a.num_threads});
            norm->execute({{s, a.inputs[4], a.inputs[5]}, {a.outputs[0]}, a.num_threads});
        },
        "fused_matmul_norm_f32_ref");
}

// S = Gather(table, ids) + addend with the plain reference kernels, then the reference LayerNormalization of S.
std::unique_ptr<Kernel> make_ref_EmbedLayerNorm(const KernelNode& node) {
    ops::TensorInfo sum = node.outputs[0];
    sum.value = nullptr;
    const std::string gather_op = "Gather";
    KernelNode gather{node.name, gather_op, AttributeMap{}, {node.inputs[1], node.inputs[0]}, {sum}};
    std::shared_ptr<Kernel> lookup = make_ref_Gather(gather);
    std::shared_ptr<Kernel> norm = sum_norm(node, sum, node.inputs[2], node.inputs[3]);
    const bool has_addend = node.inputs.size() > 4 && node.inputs[4].present;
    return make_kernel(
        [=](const KernelArgs& a) {
            Tensor s_own;
            Tensor* s = sum_output(a, s_own);
            lookup->execute({{a.inputs[1], a.inputs[0]}, {s}, a.num_threads});
            if (has_addend) epilogue(*s, a.inputs[4], Activation{});
            norm->execute({{s, a.inputs[2], a.inputs[3]}, {a.outputs[0]}, a.num_threads});
        },
        "embed_layer_norm_f32_ref");
}

// out[b, i, :] = sum_j softmax_j(scale * q[b,i,:] . k[b,j,:] + mask[b,i,j]) v[b,j,:] for every head b of the head
// batch; where each head's rows live (classic or head-packed layout) comes from attention_geometry.h.
std::unique_ptr<Kernel> make_ref_Attention(const KernelNode& node) {
    check_f32(node, 3);
    const bool mask_bool = node.attrs.get_int("mask_is_bool", 0) != 0;
    const float scale_attr = node.attrs.get_float("scale", 0.f);
    if (node.inputs.size() > 3 && node.inputs[3].present)
        KILN_CHECK(node.inputs[3].dtype == (mask_bool ? DataType::kBool : DataType::kFloat32), kUnsupported,
                   node.where(), ": mask dtype ", dtype_name(node.inputs[3].dtype), " does not match mask_is_bool");
    const AttributeMap attrs = node.attrs;
    const std::string where = node.where();
    return make_kernel(
        [=](const KernelArgs& a) {
            const Tensor& q = *a.inputs[0];
            const Tensor& k = *a.inputs[1];
            const Tensor& v = *a.inputs[2];
            const Tensor* mask = a.inputs.size() > 3 ? a.inputs[3] : nullptr;
            Tensor& out = *a.outputs[0];
            const AttentionGeometry g =
                attention_geometry(attrs, q.shape(), k.shape(), v.shape(), mask ? &mask->shape() : nullptr, where);
            const int64_t sq = g.sq, sk = g.sk, d = g.d, dv = g.dv;
            const float scale = scale_attr != 0.f ? scale_attr : 1.f / std::sqrt(static_cast<float>(d));
            const size_t nbd = g.batch.size();
            std::vector<float> s(sk);
            for (int64_t b = 0; b < g.count(); ++b) {
                const AttentionGeometry::Offsets o = g.offsets(b);
                const float* qp = q.data<float>() + o.q;
                const float* kp = k.data<float>() + o.k;
                const float* vp = v.data<float>() + o.v;
                float* op = out.data<float>() + o.o;
                for (int64_t i = 0; i < sq; ++i) {
                    float mx = -std::numeric_limits<float>::infinity();
                    for (int64_t j = 0; j < sk; ++j) {
                        float acc = 0.f;
                        for (int64_t c = 0; c < d; ++c)
                            acc += qp[i * g.q_row + c] * (g.kt ? kp[c * g.k_row + j] : kp[j * g.k_row + c]);
                        acc *= scale;
                        if (mask) {
                            int64_t m = o.m + i * g.m_str[nbd] + j * g.m_str[nbd + 1];
                            if (mask_bool) {
                                if (!mask->data<uint8_t>()[m]) acc = std::numeric_limits<float>::lowest();
                            } else {
                                acc += mask->data<float>()[m];
                            }
                        }
                        s[j] = acc;
                        mx = std::max(mx, acc);
                    }
                    float sum = 0.f;
                    for (int64_t j = 0; j < sk; ++j) sum += (s[j] = std::exp(s[j] - mx));
                    for (int64_t c = 0; c < dv; ++c) op[i * g.o_row + c] = 0.f;
                    for (int64_t j = 0; j < sk; ++j) {
                        float p = s[j] / sum;
                        for (int64_t c = 0; c < dv; ++c) op[i * g.o_row + c] += p * vp[j * g.v_row + c];
                    }
                }
            }
        },
        "attention_f32_ref");
}

// y = x / sqrt(mean(x^2 over axes [axis, rank)) + eps) * scale
std::unique_ptr<Kernel> make_ref_RMSNormalization(const KernelNode& node) {
    check_f32(node, 2);
    const int64_t axis_attr = node.attrs.get_int("axis", -1);
    const float eps = node.attrs.get_float("epsilon", 1e-5f);
    const std::string where = node.where();
    return make_kernel(
        [=](const KernelArgs& a) {
            const Tensor& x = *a.inputs[0];
            const Tensor& scale = *a.inputs[1];
            int r = x.rank();
            int axis = static_cast<int>(axis_attr < 0 ? axis_attr + r : axis_attr);
            KILN_CHECK(axis >= 0 && axis < r, kInvalidModel, where, ": axis ", axis_attr, " out of range");
            int64_t inner = 1;
            for (int i = axis; i < r; ++i) inner *= x.dim(i);
            int64_t outer = x.numel() / std::max<int64_t>(inner, 1);
            KILN_CHECK(scale.numel() == inner || scale.numel() == 1, kInvalidArgument, where, ": scale of shape ",
                       shape_str(scale.shape()), " does not match the normalised size ", inner);
            const float* xp = x.data<float>();
            const float* sp = scale.data<float>();
            float* yp = a.outputs[0]->data<float>();
            for (int64_t o = 0; o < outer; ++o) {
                double ss = 0;
                for (int64_t i = 0; i < inner; ++i) ss += double(xp[o * inner + i]) * xp[o * inner + i];
                float inv = 1.f / std::sqrt(static_cast<float>(ss / inner) + eps);
                for (int64_t i = 0; i < inner; ++i)
                    yp[o * inner + i] = xp[o * inner + i] * inv * sp[scale.numel() == 1 ? 0 : i];
            }
        },
        "rms_norm_f32_ref");
}

}  // namespace kiln::backends::reference
