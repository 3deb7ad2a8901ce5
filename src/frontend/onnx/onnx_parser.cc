// ONNX model -> IR graph: checks the model, lists every unsupported node at once, converts initializers, inputs and
// nodes (through the per-op importers), and keeps the model's metadata.
#include "kiln/onnx_parser.h"

#include <filesystem>
#include <fstream>
#include <set>

#include "src/common/check.h"
#include "src/frontend/onnx/import_context.h"
#include "src/frontend/onnx/onnx_tensor.h"
#include "src/ops/op_schema.h"

namespace kiln {

namespace {

constexpr int64_t kMinOpset = 7;
constexpr int64_t kMaxTestedOpset = 23;

bool is_default_domain(const std::string& d) { return d.empty() || d == "ai.onnx"; }

std::string node_label(const onnx::NodeProto& n, int index) {
    return n.name().empty() ? cat(n.op_type(), "_", index) : n.name();
}

SymShape convert_shape(const onnx::TypeProto_Tensor& t) {
    SymShape dims;
    if (!t.has_shape()) return dims;
    for (const auto& d : t.shape().dim()) {
        if (d.has_dim_value()) {
            dims.emplace_back(d.dim_value());
        } else if (d.has_dim_param() && !d.dim_param().empty()) {
            dims.emplace_back(Dim(d.dim_param()));
        } else {
            dims.emplace_back(Dim());
        }
    }
    return dims;
}

void check_supported(const onnx::GraphProto& g) {
    std::vector<std::string> bad;
    for (int i = 0; i < g.node_size(); ++i) {
        const onnx::NodeProto& n = g.node(i);
        bool ok = is_default_domain(n.domain()) && (n.op_type() == "Constant" || ops::find_schema(n.op_type()));
        if (!ok)
            bad.push_back(cat("  node '", node_label(n, i), "' (index ", i, "): op '", n.op_type(), "' in domain '",
                              is_default_domain(n.domain()) ? "ai.onnx" : n.domain(), "'"));
    }
    KILN_CHECK(bad.empty(), kUnsupported, bad.size(), " node(s) use ops that kiln does not support yet:\n",
               join(bad, "\n"), "\nSee docs/OPS.md for the supported ops.");
}

Tensor constant_node_value(const onnx::NodeProto& n, const std::string& model_dir, const std::string& where) {
    KILN_CHECK(n.attribute_size() == 1, kInvalidModel, where, ": a Constant node needs exactly one value attribute");
    const onnx::AttributeProto& a = n.attribute(0);
    const std::string& k = a.name();
    if (k == "value") return onnx_import::convert_tensor(a.t(), model_dir, where);
    if (k == "value_float") {
        Tensor t(DataType::kFloat32, {});
        *t.data<float>() = a.f();
        return t;
    }
    if (k == "value_int") {
        Tensor t(DataType::kInt64, {});
        *t.data<int64_t>() = a.i();
        return t;
    }
    if (k == "value_floats") {
        Tensor t(DataType::kFloat32, {a.floats_size()});
        for (int i = 0; i < a.floats_size(); ++i) t.data<float>()[i] = a.floats(i);
        return t;
    }
    if (k == "value_ints") {
        Tensor t(DataType::kInt64, {a.ints_size()});
        for (int i = 0; i < a.ints_size(); ++i) t.data<int64_t>()[i] = a.ints(i);
        return t;
    }
    KILN_FAIL(kUnsupported, where, ": Constant attribute '", k, "' is not supported");
}

class Importer {
public:
    Importer(ir::Graph& g, Logger& logger, std::string model_dir)
        : g_(g), logger_(logger), model_dir_(std::move(model_dir)) {}

    void run(const onnx::ModelProto& m) {
        KILN_CHECK(m.has_graph(), kInvalidModel, "the model has no graph (truncated or not an ONNX model?)");
        KILN_CHECK(m.ir_version() >= 3, kUnsupported, "ONNX IR version ", m.ir_version(),
                   " is older than 3; re-export the model with a newer exporter");
        opset_ = -1;
        for (const auto& op : m.opset_import())
            if (is_default_domain(op.domain())) opset_ = op.version();
        KILN_CHECK(opset_ >= 0, kInvalidModel, "the model imports no ai.onnx opset");
        KILN_CHECK(opset_ >= kMinOpset, kUnsupported, "opset ", opset_, " is older than ", kMinOpset,
                   "; convert it with onnx.version_converter.convert_version(model, 17)");
        if (opset_ > kMaxTestedOpset)
            logger_.log(Severity::kWarning, cat("opset ", opset_, " is newer than the newest tested (",
                                                kMaxTestedOpset, "); importing anyway"));
        const onnx::GraphProto& graph = m.graph();
        check_supported(graph);
        g_.name = graph.name();
        g_.producer_name = m.producer_name() + (m.producer_version().empty() ? "" : " " + m.producer_version());
        for (const auto& p : m.metadata_props()) g_.metadata[p.key()] = p.value();
        if (!m.doc_string().empty()) g_.metadata["doc_string"] = m.doc_string();
        if (!m.domain().empty()) g_.metadata["domain"] = m.domain();
        if (m.model_version()) g_.metadata["model_version"] = std::to_string(m.model_version());
        g_.metadata["opset"] = std::to_string(opset_);
        g_.metadata["ir_version"] = std::to_string(m.ir_version());

        std::set<std::string> init_names;
        for (const auto& t : graph.initializer()) {
            KILN_CHECK(!t.name().empty(), kInvalidModel, "an initializer has no name");
            g_.add_constant(t.name(), onnx_import::convert_tensor(t, model_dir_, cat("initializer '", t.name(), "'")));
            init_names.insert(t.name());
        }
        KILN_CHECK(graph.sparse_initializer_size() == 0, kUnsupported, "sparse initializers are not supported");
        for (const auto& in : graph.input()) {
            if (init_names.count(in.name())) continue;  // IR < 4 lists initializers as inputs too
            KILN_CHECK(in.type().has_tensor_type(), kUnsupported, "graph input '", in.name(),
                       "' is not a tensor (sequences/maps are not supported)");
            const auto& tt = in.type().tensor_type();
            g_.add_input(in.name(), onnx_import::convert_dtype(tt.elem_type(), cat("graph input '", in.name(), "'")),
                         convert_shape(tt));
        }
        for (int i = 0; i < graph.node_size(); ++i) import_node(graph.node(i), i);
        for (const auto& out : graph.output()) {
            ir::Value* v = g_.find_value(out.name());
            KILN_CHECK(v, kInvalidModel, "graph output '", out.name(), "' is not produced by any node");
            if (out.type().has_tensor_type() && !v->shape_known && out.type().tensor_type().has_shape()) {
                v->dims = convert_shape(out.type().tensor_type());  // symbols the exporter knew
                v->shape_known = true;
            }
            g_.mark_output(v);
        }
        KILN_CHECK(!g_.outputs().empty(), kInvalidModel, "the graph has no outputs");
    }

private:
    ir::Value* value_for(const std::string& name) {
        ir::Value* v = g_.find_value(name);
        return v ? v : g_.add_value(name);
    }

    void import_node(const onnx::NodeProto& n, int index) {
        std::string name = node_label(n, index);
        if (!used_names_.insert(name).second) name = g_.unique_name(name);
        std::string where = cat("node '", name, "' (", n.op_type(), ", index ", index, ")");
        if (n.op_type() == "Constant") {
            KILN_CHECK(n.output_size() == 1, kInvalidModel, where, ": Constant must have one output");
            Tensor t = constant_node_value(n, model_dir_, where);
            ir::Value* v = g_.find_value(n.output(0));
            if (!v) {
                g_.add_constant(n.output(0), std::move(t));
            } else {
                KILN_CHECK(!v->producer && !v->is_input && !v->is_constant(), kInvalidModel, where, ": output '",
                           n.output(0), "' is defined more than once");
                v->dtype = t.dtype();
                v->dims = to_sym(t.shape());
                v->shape_known = true;
                v->constant = std::move(t);
            }
            return;
        }
        onnx_import::ImportContext ctx{g_, opset_, name, n.op_type(), {}, {}, {}};
        for (const std::string& in : n.input()) ctx.inputs.push_back(in.empty() ? nullptr : value_for(in));
        int n_out = n.output_size();
        while (n_out > 0 && n.output(n_out - 1).empty()) --n_out;  // trailing omitted optional outputs
        for (int i = 0; i < n_out; ++i) {
            const std::string& out = n.output(i);
            ctx.outputs.push_back(out.empty() ? g_.add_value(g_.unique_name(name + "_unused")) : value_for(out));
        }
        for (const auto& a : n.attribute()) ctx.attrs.set(a.name(), onnx_import::convert_attribute(a, model_dir_, where));
        try {
            if (onnx_import::ImporterFn fn = onnx_import::find_importer(n.op_type())) {
                fn(ctx);
            } else {
                ctx.emit_as_is();
            }
        } catch (const Error& e) {
            std::string msg = e.what();
            if (msg.find(name) == std::string::npos) msg = cat(where, ": ", msg);
            throw Error(e.code(), msg);
        }
    }

    ir::Graph& g_;
    Logger& logger_;
    std::string model_dir_;
    int64_t opset_ = 0;
    std::set<std::string> used_names_;
};

}  // namespace

void OnnxParser::parse_bytes(const void* data, size_t size, const std::string& source, const std::string& model_dir) {
    try {
        KILN_CHECK(size > 0, kInvalidModel, "the file is empty");
        onnx::ModelProto model;
        KILN_CHECK(size < (size_t{1} << 31), kUnsupported, "the model file is over 2 GB; save large weights as ",
                   "external data (onnx.save(model, path, save_as_external_data=True))");
        KILN_CHECK(model.ParseFromArray(data, static_cast<int>(size)), kInvalidModel,
                   "not a valid ONNX model: the protobuf cannot be parsed (the file is truncated or corrupted)");
        Importer(network_.graph(), logger_, model_dir).run(model);
    } catch (const Error& e) {
        throw Error(e.code(), cat(source, ": ", e.what()));
    }
}

void OnnxParser::parse_file(const std::string& path) {
    std::error_code ec;
    KILN_CHECK(std::filesystem::exists(path, ec), kIoError, "cannot open model file '", path,
               "': no such file or directory");
    KILN_CHECK(!std::filesystem::is_directory(path, ec), kIoError, "cannot open model file '", path,
               "': it is a directory");
    std::ifstream f(path, std::ios::binary);
    KILN_CHECK(f.good(), kIoError, "cannot open model file '", path, "': permission denied or unreadable");
    std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    std::string dir = std::filesystem::path(path).parent_path().string();
    parse_bytes(bytes.data(), bytes.size(), path, dir.empty() ? "." : dir);
}

Tensor read_tensor_proto(const void* data, size_t size, const std::string& source) {
    onnx::TensorProto t;
    KILN_CHECK(size < (size_t{1} << 31) && t.ParseFromArray(data, static_cast<int>(size)), kInvalidArgument, "'",
               source, "' is neither a .npy file nor a valid ONNX TensorProto (.pb)");
    return onnx_import::convert_tensor(t, ".", cat("tensor file '", source, "'"));
}

}  // namespace kiln
