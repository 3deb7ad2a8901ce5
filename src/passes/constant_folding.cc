// Evaluates nodes whose inputs are all constants at build time (with the reference backend) and replaces their
// outputs by constants. Shape and Size fold as soon as their input's dims are static, even when the input itself
// is not constant, which makes PyTorch's Shape -> Gather -> Unsqueeze -> Concat -> Reshape chains static.
//
// Limits: a node whose outputs would exceed kMaxGrowBytes AND be larger than the constant inputs it frees (inputs
// read by no other node, e.g. Expand/Tile/ConstantOfShape) is left alone, unless every output is int64 (shape
// arithmetic). Ops the reference backend does not support, or whose kernel throws, are left alone.
#include <memory>
#include <set>

#include "src/backends/backend.h"
#include "src/common/check.h"
#include "src/ops/op_schema.h"
#include "src/ops/shape_utils.h"
#include "src/passes/pass.h"

namespace kiln::passes {

namespace {

constexpr size_t kMaxGrowBytes = size_t{1} << 20;  // 1 MiB
constexpr int kMaxSweeps = 16;

bool is_onnx_domain(const ir::Node* n) { return n->domain.empty() || n->domain == "ai.onnx"; }

/// Turns `v` (whose producer was just removed) into a constant holding `t`; its name and uses stay.
void make_constant(ir::Value* v, Tensor t) {
    v->producer = nullptr;
    v->dtype = t.dtype();
    v->dims = to_sym(t.shape());
    v->shape_known = true;
    v->constant = std::move(t);
}

/// Shape(x) with static dims of x: the dims in [start, end) as int64 (ONNX clamps start/end to [0, rank]).
Tensor shape_tensor(const ir::Node* n, const SymShape& dims) {
    int64_t rank = static_cast<int64_t>(dims.size());
    auto clamp = [rank](int64_t a) {
        if (a < 0) a += rank;
        return std::min(std::max<int64_t>(a, 0), rank);
    };
    int64_t start = clamp(n->attrs.get_int("start", 0));
    int64_t end = clamp(n->attrs.get_int("end", rank));
    int64_t len = std::max<int64_t>(end - start, 0);
    Tensor t(DataType::kInt64, {len});
    for (int64_t i = 0; i < len; ++i) t.data<int64_t>()[i] = dims[start + i].value;
    return t;
}

/// Folds Shape/Size of a value with static dims. Returns false when the dims are not all static.
bool fold_shape_query(ir::Graph& g, ir::Node* n) {
    ir::Value* in = n->input(0);
    if (!in || !in->shape_known || !is_static(in->dims) || n->outputs.size() != 1) return false;
    Tensor t;
    if (n->op_type == "Shape") {
        t = shape_tensor(n, in->dims);
    } else {
        t = Tensor(DataType::kInt64, {});
        t.data<int64_t>()[0] = shape_numel(ops::to_concrete(in->dims));
    }
    ir::Value* out = n->outputs[0];
    g.remove_node(n);
    make_constant(out, std::move(t));
    return true;
}

/// Bytes of the constant inputs that only `n` reads (they die once `n` is folded).
size_t freed_bytes(const ir::Graph& g, const ir::Node* n) {
    size_t freed = 0;
    std::set<const ir::Value*> seen;
    for (const ir::Value* in : n->inputs) {
        if (!in || !seen.insert(in).second || in->is_output) continue;
        bool only_here = true;
        for (const ir::Node* c : g.consumers(in)) only_here &= c == n;
        if (only_here) freed += in->constant->bytes();
    }
    return freed;
}

/// Evaluates a node whose inputs are all constants. Returns false (graph unchanged) when it cannot or should not.
bool fold_constant_node(ir::Graph& g, ir::Node* n, const backends::Backend& ref, Logger& logger) {
    std::vector<ops::TensorInfo> in_infos;
    std::vector<const Tensor*> in_tensors;
    for (const ir::Value* in : n->inputs) {
        ops::TensorInfo t;
        if (!in) {
            t.present = false;
        } else {
            t.dtype = in->constant->dtype();
            t.dims = to_sym(in->constant->shape());
            t.value = &*in->constant;
        }
        in_tensors.push_back(in ? &*in->constant : nullptr);
        in_infos.push_back(std::move(t));
    }
    try {
        std::vector<ops::TensorInfo> out_infos =
            ops::infer_node(n->name, n->op_type, n->attrs, in_infos, n->outputs.size());
        size_t out_bytes = 0;
        bool all_int64 = true;
        for (const ops::TensorInfo& o : out_infos) {
            if (!is_static(o.dims)) return false;
            out_bytes += static_cast<size_t>(shape_numel(ops::to_concrete(o.dims))) * dtype_size(o.dtype);
            all_int64 &= o.dtype == DataType::kInt64;
        }
        if (n->op_type != "Constant" && !all_int64 && out_bytes > kMaxGrowBytes && out_bytes > freed_bytes(g, n)) {
            logger.log(Severity::kVerbose, cat("constant_folding: not folding '", n->name, "' (", n->op_type, "): ",
                                               out_bytes, " output bytes would grow the weights"));
            return false;
        }
        backends::KernelNode kn{n->name, n->op_type, n->attrs, in_infos, out_infos};
        if (!ref.supports(kn)) return false;
        std::unique_ptr<backends::Kernel> kernel = ref.create_kernel(kn);
        std::vector<Tensor> outs;
        for (const ops::TensorInfo& o : out_infos) outs.emplace_back(o.dtype, ops::to_concrete(o.dims));
        backends::KernelArgs args;
        args.inputs = in_tensors;
        for (Tensor& t : outs) args.outputs.push_back(&t);
        kernel->execute(args);
        std::vector<ir::Value*> values = n->outputs;
        g.remove_node(n);
        for (size_t i = 0; i < values.size(); ++i) make_constant(values[i], std::move(outs[i]));
        return true;
    } catch (const Error& e) {
        logger.log(Severity::kVerbose, cat("constant_folding: not folding '", n->name, "' (", n->op_type,
                                           "): ", e.what()));
        return false;
    }
}

bool all_inputs_constant(const ir::Node* n) {
    for (const ir::Value* in : n->inputs)
        if (in && !in->is_constant()) return false;
    return true;
}

}  // namespace

bool constant_folding(ir::Graph& g, PassContext& ctx) {
    std::unique_ptr<backends::Backend> ref = backends::make_reference_backend();
    bool changed = false;
    g.topological_sort();
    for (int sweep = 0; sweep < kMaxSweeps; ++sweep) {
        bool swept = false;
        // Topological order: a folded node's consumers see constants in the same sweep.
        for (ir::Node* n : g.nodes()) {
            if (!is_onnx_domain(n)) continue;
            g.infer_node(n, /*lenient=*/true);  // inputs folded earlier in this sweep may make this node's dims static now
            if (n->op_type == "Shape" || n->op_type == "Size") {
                if (n->input(0) && n->input(0)->is_constant() ? fold_constant_node(g, n, *ref, ctx.logger)
                                                             : fold_shape_query(g, n))
                    swept = true;
                continue;
            }
            if (all_inputs_constant(n) && fold_constant_node(g, n, *ref, ctx.logger)) swept = true;
        }
        if (!swept) break;
        changed = true;
        // New constants can make more dims static (a Reshape whose shape input just folded), so re-infer and sweep
        // again until nothing changes.
        g.infer_shapes(/*lenient=*/true);
    }
    if (changed) g.remove_unused_values();
    return changed;
}

}  // namespace kiln::passes
