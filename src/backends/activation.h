#pragma once
// Activation epilogues of fused ops, shared by every backend: a node attribute `activation` names one of these and
// `activation_alpha` / `activation_beta` carry its parameters.
#include <cmath>
#include <string>

#include "kiln/attribute.h"
#include "src/common/check.h"

namespace kiln::backends {

enum class ActivationKind { kNone, kRelu, kLeakyRelu, kClip, kSigmoid, kSilu, kHardSigmoid, kHardSwish, kTanh, kGelu,
                            kGeluTanh, kElu };

struct Activation {
    ActivationKind kind = ActivationKind::kNone;
    float alpha = 0.f;  // LeakyRelu/Elu alpha, Clip min, HardSigmoid alpha
    float beta = 0.f;   // Clip max, HardSigmoid beta

    static Activation from_attrs(const AttributeMap& attrs, const std::string& where) {
        static const std::pair<const char*, ActivationKind> kNames[] = {
            {"", ActivationKind::kNone},           {"Relu", ActivationKind::kRelu},
            {"LeakyRelu", ActivationKind::kLeakyRelu}, {"Clip", ActivationKind::kClip},
            {"Sigmoid", ActivationKind::kSigmoid}, {"Silu", ActivationKind::kSilu},
            {"HardSigmoid", ActivationKind::kHardSigmoid}, {"HardSwish", ActivationKind::kHardSwish},
            {"Tanh", ActivationKind::kTanh},       {"Gelu", ActivationKind::kGelu},
            {"GeluTanh", ActivationKind::kGeluTanh}, {"Elu", ActivationKind::kElu},
        };
        Activation a;
        std::string name = attrs.get_string("activation", "");
        bool found = false;
        for (auto& [n, k] : kNames)
            if (name == n) {
                a.kind = k;
                found = true;
            }
        KILN_CHECK(found, kUnsupported, where, ": unknown fused activation '", name, "'");
        a.alpha = attrs.get_float("activation_alpha", 0.f);
        a.beta = attrs.get_float("activation_beta", 0.f);
        return a;
    }

    template <typename T>
    T apply(T x) const {
        switch (kind) {
            case ActivationKind::kNone: return x;
            case ActivationKind::kRelu: return x > T(0) ? x : T(0);
            case ActivationKind::kLeakyRelu: return x >= T(0) ? x : T(alpha) * x;
            case ActivationKind::kClip: return x < T(alpha) ? T(alpha) : (x > T(beta) ? T(beta) : x);
            case ActivationKind::kSigmoid: return T(1) / (T(1) + std::exp(-x));
            case ActivationKind::kSilu: return x / (T(1) + std::exp(-x));
            case ActivationKind::kHardSigmoid: return std::max(T(0), std::min(T(1), T(alpha) * x + T(beta)));
            case ActivationKind::kHardSwish: return x * std::max(T(0), std::min(T(1), x / T(6) + T(0.5)));
            case ActivationKind::kTanh: return std::tanh(x);
            // Gelu(x) = x/2 (1 + erf(x / sqrt 2)); tanh form: x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
            case ActivationKind::kGelu: return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752)));
            case ActivationKind::kGeluTanh:
                return T(0.5) * x * (T(1) + std::tanh(T(0.79788456080286536) * (x + T(0.044715) * x * x * x)));
            case ActivationKind::kElu: return x >= T(0) ? x : T(alpha) * (std::exp(x) - T(1));
        }
        return x;
    }
};

}  // namespace kiln::backends
