// Shape inference for Gemm, MatMul, Einsum and Resize, plus the Einsum equation parser and Resize output planner
// shared with their reference kernels (src/ops/nn.h).
#include "src/ops/nn.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include "src/common/check.h"
#include "src/ops/op_schema.h"
#include "src/ops/shape_utils.h"

namespace kiln::ops {
namespace {

// ------------------------------------------------------------------------------------------ einsum parsing

struct EinsumTerm {
    std::vector<int> letters;  // char code per explicit label, -1 for the ellipsis position
    bool has_ellipsis = false;
};

EinsumTerm parse_einsum_term(const std::string& term, const std::string& equation, const std::string& where) {
    EinsumTerm t;
    for (size_t i = 0; i < term.size(); ++i) {
        char c = term[i];
        if (std::isalpha(static_cast<unsigned char>(c))) {
            t.letters.push_back(c);
        } else if (c == '.' && term.compare(i, 3, "...") == 0 && !t.has_ellipsis) {
            t.has_ellipsis = true;
            t.letters.push_back(-1);
            i += 2;
        } else {
            KILN_FAIL(kInvalidModel, where, ": Einsum equation '", equation, "' has an invalid term '", term, "'");
        }
    }
    return t;
}

}  // namespace

EinsumSpec parse_einsum(const std::string& equation, const std::vector<int>& input_ranks, const std::string& where) {
    std::string eq;
    for (char c : equation)
        if (!std::isspace(static_cast<unsigned char>(c))) eq += c;
    size_t arrow = eq.find("->");
    std::string lhs = eq.substr(0, arrow);
    std::vector<EinsumTerm> terms;
    for (size_t pos = 0;;) {
        size_t comma = lhs.find(',', pos);
        terms.push_back(parse_einsum_term(lhs.substr(pos, comma - pos), equation, where));
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    KILN_CHECK(terms.size() == input_ranks.size(), kInvalidModel, where, ": Einsum equation '", equation, "' has ",
               terms.size(), " input terms but the node has ", input_ranks.size(), " inputs");

    EinsumSpec spec;
    std::map<int, int> ids;  // char code -> label id
    std::map<int, int> counts;
    int max_ell = 0;
    std::vector<int> ell_dims(terms.size(), 0);
    for (size_t t = 0; t < terms.size(); ++t) {
        int explicit_labels = static_cast<int>(terms[t].letters.size()) - (terms[t].has_ellipsis ? 1 : 0);
        ell_dims[t] = input_ranks[t] - explicit_labels;
        KILN_CHECK(ell_dims[t] == 0 || (terms[t].has_ellipsis && ell_dims[t] > 0), kInvalidModel, where,
                   ": Einsum equation '", equation, "': term ", t, " has ", explicit_labels, " labels but input ", t,
                   " has rank ", input_ranks[t]);
        max_ell = std::max(max_ell, ell_dims[t]);
        for (int c : terms[t].letters) {
            if (c < 0) continue;
            if (!ids.count(c)) ids[c] = static_cast<int>(ids.size());
            ++counts[c];
        }
    }
    // Ellipsis dims get the ids after the letters, right-aligned across inputs (numpy broadcasting).
    int n_letters = static_cast<int>(ids.size());
    spec.num_labels = n_letters + max_ell;
    std::vector<int> ell_ids(max_ell);
    for (int j = 0; j < max_ell; ++j) ell_ids[j] = n_letters + j;
    for (size_t t = 0; t < terms.size(); ++t) {
        std::vector<int> labels;
        for (int c : terms[t].letters) {
            if (c >= 0) {
                labels.push_back(ids[c]);
            } else {
                for (int j = max_ell - ell_dims[t]; j < max_ell; ++j) labels.push_back(ell_ids[j]);
            }
        }
        spec.inputs.push_back(labels);
    }
    if (arrow != std::string::npos) {
        EinsumTerm out = parse_einsum_term(eq.substr(arrow + 2), equation, where);
        std::vector<bool> used(spec.num_labels, false);
        for (int c : out.letters) {
            if (c < 0) {
                spec.output.insert(spec.output.end(), ell_ids.begin(), ell_ids.end());
                continue;
            }
            KILN_CHECK(ids.count(c), kInvalidModel, where, ": Einsum equation '", equation, "': output label '",
                       static_cast<char>(c), "' does not appear in any input");
            KILN_CHECK(!used[ids[c]], kInvalidModel, where, ": Einsum equation '", equation, "': output label '",
                       static_cast<char>(c), "' appears twice");
            used[ids[c]] = true;
            spec.output.push_back(ids[c]);
        }
    } else {
        // Implicit output: the ellipsis dims, then the labels seen exactly once, in alphabetical order.
        spec.output = ell_ids;
        for (auto& [c, n] : counts)
            if (n == 1) spec.output.push_back(ids[c]);
    }
    return spec;
}

std::vector<int64_t> einsum_label_dims(const EinsumSpec& spec, const std::vector<std::vector<int64_t>>& input_dims,
                                       const std::string& equation, const std::string& where) {
    std::vector<int64_t> dims(spec.num_labels, -2);  // -2: no occurrence seen yet
    std::vector<bool> unknown(spec.num_labels, false);
    for (size_t t = 0; t < spec.inputs.size(); ++t) {
        for (size_t d = 0; d < spec.inputs[t].size(); ++d) {
            int l = spec.inputs[t][d];
            int64_t v = input_dims[t][d];
            if (v < 0) {
                unknown[l] = true;
            } else if (dims[l] < 0 || dims[l] == 1) {
                dims[l] = v;
            } else {
                KILN_CHECK(v == 1 || v == dims[l], kInvalidModel, where, ": Einsum equation '", equation, "': dim ", d,
                           " of input ", t, " has extent ", v, " but the same label has extent ", dims[l],
                           " elsewhere");
            }
        }
    }
    for (int l = 0; l < spec.num_labels; ++l)
        if (dims[l] < 0 || (unknown[l] && dims[l] == 1)) dims[l] = -1;
    return dims;
}

// ------------------------------------------------------------------------------------------ resize planning

ResizeAttrs parse_resize_attrs(const AttributeMap& attrs, const std::string& where) {
    ResizeAttrs a;
    a.mode = attrs.get_string("mode", "nearest");
    KILN_CHECK(a.mode != "cubic", kUnsupported, where, ": Resize mode 'cubic' is not supported (nearest, linear are)");
    KILN_CHECK(a.mode == "nearest" || a.mode == "linear", kInvalidModel, where, ": attribute 'mode' = '", a.mode,
               "' is not one of nearest, linear, cubic");
    a.coordinate_transformation_mode = attrs.get_string("coordinate_transformation_mode", "half_pixel");
    static const char* kCoordModes[] = {"half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners",
                                        "asymmetric", "tf_half_pixel_for_nn", "tf_crop_and_resize"};
    KILN_CHECK(std::find(std::begin(kCoordModes), std::end(kCoordModes), a.coordinate_transformation_mode) !=
                   std::end(kCoordModes),
               kUnsupported, where, ": attribute 'coordinate_transformation_mode' = '",
               a.coordinate_transformation_mode, "' is not supported");
    a.nearest_mode = attrs.get_string("nearest_mode", "round_prefer_floor");
    KILN_CHECK(a.nearest_mode == "round_prefer_floor" || a.nearest_mode == "round_prefer_ceil" ||
                   a.nearest_mode == "floor" || a.nearest_mode == "ceil",
               kInvalidModel, where, ": attribute 'nearest_mode' = '", a.nearest_mode,
               "' is not one of round_prefer_floor, round_prefer_ceil, floor, ceil");
    a.keep_aspect_ratio_policy = attrs.get_string("keep_aspect_ratio_policy", "stretch");
    KILN_CHECK(a.keep_aspect_ratio_policy == "stretch" || a.keep_aspect_ratio_policy == "not_larger" ||
                   a.keep_aspect_ratio_policy == "not_smaller",
               kInvalidModel, where, ": attribute 'keep_aspect_ratio_policy' = '", a.keep_aspect_ratio_policy,
               "' is not one of stretch, not_larger, not_smaller");
    int64_t antialias = attrs.get_int("antialias", 0);
    KILN_CHECK(antialias == 0, kUnsupported, where, ": Resize with attribute 'antialias' = ", antialias,
               " is not supported");
    a.axes = attrs.get_ints("axes");
    a.extrapolation_value = attrs.get_float("extrapolation_value", 0.f);
    return a;
}

void resize_output(const ResizeAttrs& a, const Shape& in, const std::vector<float>& scales,
                   const std::vector<int64_t>& sizes, bool use_sizes, Shape* out, std::vector<float>* used_scales,
                   const std::string& where) {
    int rank = static_cast<int>(in.size());
    std::vector<int> axes;
    if (a.axes.empty()) {
        for (int i = 0; i < rank; ++i) axes.push_back(i);
    } else {
        for (int64_t ax : a.axes) {
            KILN_CHECK(ax >= -rank && ax < rank, kInvalidModel, where, ": attribute 'axes' = [", join(a.axes, ","),
                       "] is out of range for a rank-", rank, " input");
            int n = static_cast<int>(ax < 0 ? ax + rank : ax);
            KILN_CHECK(std::find(axes.begin(), axes.end(), n) == axes.end(), kInvalidModel, where,
                       ": attribute 'axes' = [", join(a.axes, ","), "] has a repeated axis");
            axes.push_back(n);
        }
    }
    size_t given = use_sizes ? sizes.size() : scales.size();
    KILN_CHECK(given == axes.size(), kInvalidModel, where, ": '", use_sizes ? "sizes" : "scales", "' has ", given,
               " values but ", axes.size(), " are needed (one per ", a.axes.empty() ? "input dim" : "axis", ")");
    *out = in;
    used_scales->assign(rank, 1.f);
    if (!use_sizes) {
        for (size_t j = 0; j < axes.size(); ++j) {
            KILN_CHECK(scales[j] > 0.f, kInvalidModel, where, ": 'scales' value ", scales[j], " must be > 0");
            int ax = axes[j];
            (*used_scales)[ax] = scales[j];
            (*out)[ax] = in[ax] < 0 ? -1 : static_cast<int64_t>(scales[j] * static_cast<float>(in[ax]));
        }
        return;
    }
    for (int64_t s : sizes)
        KILN_CHECK(s >= 0, kInvalidModel, where, ": 'sizes' = [", join(sizes, ","), "] has a negative value");
    if (a.keep_aspect_ratio_policy == "stretch") {
        for (size_t j = 0; j < axes.size(); ++j) {
            int ax = axes[j];
            (*out)[ax] = sizes[j];
            if (in[ax] > 0) (*used_scales)[ax] = static_cast<float>(sizes[j]) / static_cast<float>(in[ax]);
        }
        return;
    }
    // not_larger / not_smaller: one scale for all axes, the min / max of sizes / in.
    bool not_larger = a.keep_aspect_ratio_policy == "not_larger";
    float scale = 0.f;
    for (size_t j = 0; j < axes.size(); ++j) {
        int ax = axes[j];
        if (in[ax] <= 0) {
            for (int x : axes) (*out)[x] = -1;
            return;
        }
        float s = static_cast<float>(sizes[j]) / static_cast<float>(in[ax]);
        scale = j == 0 ? s : (not_larger ? std::min(scale, s) : std::max(scale, s));
    }
    for (int ax : axes) {
        (*used_scales)[ax] = scale;
        (*out)[ax] = static_cast<int64_t>(std::round(scale * static_cast<float>(in[ax])));
    }
}

// ------------------------------------------------------------------------------------------ inference

void infer_gemm(InferContext& ctx) {
    const TensorInfo& a = ctx.input(0);
    const TensorInfo& b = ctx.input(1);
    ctx.check(a.rank() == 2 && b.rank() == 2, "A and B must be 2-D, got ", shape_str(a.dims), " and ",
              shape_str(b.dims));
    ctx.check(a.dtype == b.dtype, "B has dtype ", dtype_name(b.dtype), " but A has ", dtype_name(a.dtype));
    bool ta = ctx.attrs().get_int("transA", 0) != 0;
    bool tb = ctx.attrs().get_int("transB", 0) != 0;
    Dim m = a.dims[ta ? 1 : 0], k = a.dims[ta ? 0 : 1];
    Dim k2 = b.dims[tb ? 1 : 0], n = b.dims[tb ? 0 : 1];
    if (k.is_static() && k2.is_static())
        ctx.check(k.value == k2.value, "inner dims do not match: op(A) is ", m.str(), "x", k.str(), ", op(B) is ",
                  k2.str(), "x", n.str(), " (transA=", ta, ", transB=", tb, ")");
    if (ctx.has_input(2)) {
        const TensorInfo& c = ctx.input(2);
        ctx.check(c.dtype == a.dtype, "C has dtype ", dtype_name(c.dtype), " but A has ", dtype_name(a.dtype));
        ctx.check(c.rank() <= 2, "C must have rank <= 2, got ", shape_str(c.dims));
        SymShape mn = {m, n};
        for (int i = 0; i < c.rank(); ++i) {
            const Dim& cd = c.dims[i];
            const Dim& od = mn[2 - c.rank() + i];
            ctx.check(!cd.is_static() || !od.is_static() || cd.value == 1 || cd.value == od.value, "C of shape ",
                      shape_str(c.dims), " cannot be broadcast to ", shape_str(mn));
        }
    }
    ctx.set_output(0, a.dtype, {m, n});
}

void infer_matmul(InferContext& ctx) {
    const TensorInfo& a = ctx.input(0);
    const TensorInfo& b = ctx.input(1);
    ctx.check(a.rank() >= 1 && b.rank() >= 1, "inputs must have rank >= 1, got ", shape_str(a.dims), " and ",
              shape_str(b.dims));
    ctx.check(a.dtype == b.dtype, "B has dtype ", dtype_name(b.dtype), " but A has ", dtype_name(a.dtype));
    SymShape ad = a.dims, bd = b.dims;
    if (a.rank() == 1) ad.insert(ad.begin(), Dim(1));
    if (b.rank() == 1) bd.push_back(Dim(1));
    const Dim& k = ad.back();
    const Dim& k2 = bd[bd.size() - 2];
    if (k.is_static() && k2.is_static())
        ctx.check(k.value == k2.value, "inner dims do not match: A is ", shape_str(a.dims), ", B is ",
                  shape_str(b.dims));
    SymShape out = broadcast_shapes(ctx, SymShape(ad.begin(), ad.end() - 2), SymShape(bd.begin(), bd.end() - 2));
    if (a.rank() > 1) out.push_back(ad[ad.size() - 2]);
    if (b.rank() > 1) out.push_back(bd.back());
    ctx.set_output(0, a.dtype, out);
}

void infer_einsum(InferContext& ctx) {
    std::string equation = ctx.attrs().get_string("equation", "");
    ctx.check(!equation.empty(), "required attribute 'equation' is missing");
    std::vector<int> ranks;
    std::vector<std::vector<int64_t>> dims;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
        const TensorInfo& t = ctx.input(i);
        ctx.check(t.dtype == ctx.input(0).dtype, "input ", i, " has dtype ", dtype_name(t.dtype), " but input 0 has ",
                  dtype_name(ctx.input(0).dtype));
        ranks.push_back(t.rank());
        std::vector<int64_t> d;
        for (const Dim& x : t.dims) d.push_back(x.is_static() ? x.value : -1);
        dims.push_back(d);
    }
    EinsumSpec spec = parse_einsum(equation, ranks, ctx.where());
    std::vector<int64_t> label_dims = einsum_label_dims(spec, dims, equation, ctx.where());
    SymShape out;
    for (int l : spec.output) {
        // Keep a symbolic dim when the label's only extent is that symbol.
        Dim d = label_dims[l] >= 0 ? Dim(label_dims[l]) : Dim();
        if (label_dims[l] < 0)
            for (size_t t = 0; t < spec.inputs.size(); ++t)
                for (size_t j = 0; j < spec.inputs[t].size(); ++j)
                    if (spec.inputs[t][j] == l && !ctx.input(t).dims[j].symbol.empty()) d = ctx.input(t).dims[j];
        out.push_back(d);
    }
    ctx.set_output(0, ctx.input(0).dtype, out);
}

void infer_resize(InferContext& ctx) {
    const TensorInfo& x = ctx.input(0);
    ResizeAttrs a = parse_resize_attrs(ctx.attrs(), ctx.where());
    // 1: given, 0: omitted or an empty tensor, -1: present with an extent not known yet.
    auto given = [&](size_t i) {
        if (!ctx.has_input(i)) return 0;
        const SymShape& d = ctx.input(i).dims;
        if (d.size() != 1) return 1;
        return d[0].is_static() ? (d[0].value > 0 ? 1 : 0) : -1;
    };
    int scales_given = given(2), sizes_given = given(3);
    ctx.check(!(scales_given == 1 && sizes_given == 1), "only one of 'scales' and 'sizes' may be given");
    ctx.check(scales_given != 0 || sizes_given != 0, "one of 'scales' and 'sizes' must be given");
    bool has_sizes = sizes_given == 1 || (sizes_given == -1 && scales_given == 0);
    bool decided = has_sizes || scales_given == 1 || (scales_given == -1 && sizes_given == 0);
    Shape in;
    for (const Dim& d : x.dims) in.push_back(d.is_static() ? d.value : -1);
    std::vector<float> scales;
    std::vector<int64_t> sizes;
    bool known = false;
    if (!decided) {
        // Which of scales and sizes is empty is only known at run time.
    } else if (has_sizes) {
        known = ctx.input_ints(3, &sizes);
    } else if (const Tensor* v = ctx.input(2).value) {
        for (int64_t i = 0; i < v->numel(); ++i) scales.push_back(static_cast<float>(v->get_f64(i)));
        known = true;
    }
    auto listed = [&](size_t i) {
        return a.axes.empty() || std::any_of(a.axes.begin(), a.axes.end(), [&](int64_t ax) {
                   return (ax < 0 ? ax + x.rank() : ax) == static_cast<int64_t>(i);
               });
    };
    SymShape out(x.dims.size());
    if (known) {
        Shape o;
        std::vector<float> used;
        resize_output(a, in, scales, sizes, has_sizes, &o, &used, ctx.where());
        for (size_t i = 0; i < o.size(); ++i) {
            if (o[i] >= 0)
                out[i] = Dim(o[i]);
            else if (!listed(i) || (!has_sizes && used[i] == 1.f))
                out[i] = x.dims[i];  // unchanged (possibly symbolic) dim
        }
    } else {
        for (size_t i = 0; i < out.size(); ++i)
            if (!listed(i)) out[i] = x.dims[i];
    }
    ctx.set_output(0, x.dtype, out);
}

}  // namespace kiln::ops
