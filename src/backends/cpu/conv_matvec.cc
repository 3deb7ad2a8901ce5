// Conv / FusedConv on a 1x1 image with a 1x1 kernel: the squeeze-excite convolutions of EfficientNet / MobileNetV3
// ([N, C, 1, 1] -> [N, K, 1, 1], C and K 8..1152). Each is a matrix-vector product per image:
//   y[n, k] = act(B[k] + sum_c W[k, c] * x[n, c])
// kiln runs it on the calling thread: through oneDNN it cost a primitive call plus a reorder of the 8..48-channel
// operand to or from nChw16c (EfficientNet-B0: 32 such convolutions, 2 oneDNN calls each).
#include <cmath>

#include "src/backends/cpu/cpu_backend.h"
#include "src/backends/cpu/vec_math.h"

namespace kiln::backends::cpu {

namespace {

// dot(w, x) over n floats with 16 independent accumulators (vectorises).
KILN_CPU_MULTIVERSION void matvec(const float* w, const float* x, const float* bias, float* y, int64_t rows,
                                  int64_t n) {
    for (int64_t r = 0; r < rows; ++r, w += n) {
        float acc[16] = {};
        int64_t i = 0;
        for (; i + 16 <= n; i += 16)
            for (int l = 0; l < 16; ++l) acc[l] += w[i + l] * x[i + l];
        float s = bias ? bias[r] : 0.f;
        for (; i < n; ++i) s += w[i] * x[i];
        for (float a : acc) s += a;
        y[r] = s;
    }
}

// The squeeze-excite activations, vectorised (exp_approx, ~2 ulp); the others through Activation::apply.
KILN_CPU_MULTIVERSION void sigmoid_inplace(float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = 1.f / (1.f + exp_approx(-y[i]));
}
KILN_CPU_MULTIVERSION void silu_inplace(float* y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = y[i] / (1.f + exp_approx(-y[i]));
}

class ConvMatVecKernel : public Kernel {
public:
    explicit ConvMatVecKernel(const KernelNode& node) : act_(Activation::from_attrs(node.attrs, node.where())) {
        weights_ = *node.inputs[1].value;
        if (node.inputs.size() > 2 && node.inputs[2].present) bias_ = *node.inputs[2].value;
    }
    std::string describe() const override { return "conv1x1_on_1x1_f32_matvec"; }
    bool writes_all_outputs() const override { return true; }

    void execute(const KernelArgs& a) const override {
        const Tensor& x = *a.inputs[0];
        Tensor& y = *a.outputs[0];
        const int64_t k = weights_.dim(0), c = weights_.dim(1);
        const float* b = bias_.defined() ? bias_.data<float>() : nullptr;
        for (int64_t n = 0; n < x.dim(0); ++n) {
            float* yn = y.data<float>() + n * k;
            matvec(weights_.data<float>(), x.data<float>() + n * c, b, yn, k, c);
            if (act_.kind == ActivationKind::kSigmoid)
                sigmoid_inplace(yn, k);
            else if (act_.kind == ActivationKind::kSilu)
                silu_inplace(yn, k);
            else if (act_.kind != ActivationKind::kNone)
                for (int64_t i = 0; i < k; ++i) yn[i] = act_.apply(yn[i]);
        }
    }

private:
    Activation act_;
    Tensor weights_, bias_;
};

bool is_static_one(const Dim& d) { return d.is_static() && d.value == 1; }

}  // namespace

bool conv_is_matvec(const KernelNode& node) {
    const SymShape& x = node.inputs[0].dims;
    const SymShape& w = node.inputs[1].dims;
    const SymShape& y = node.outputs[0].dims;
    if (node.attrs.get_int("group", 1) != 1) return false;
    if (node.inputs.size() > 3 && node.inputs[3].present) return false;  // no residual
    if (node.input_layout(0) != Layout::kPlain || node.output_layout(0) != Layout::kPlain) return false;
    return is_static_one(x[2]) && is_static_one(x[3]) && is_static_one(w[2]) && is_static_one(w[3]) &&
           is_static_one(y[2]) && is_static_one(y[3]);
}

std::unique_ptr<Kernel> make_cpu_conv_matvec(const KernelNode& node) {
    return std::make_unique<ConvMatVecKernel>(node);
}

}  // namespace kiln::backends::cpu
