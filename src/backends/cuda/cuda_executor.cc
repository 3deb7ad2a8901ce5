// The CUDA device executor: checks the GPU against the plan, uploads weights once, creates one kernel per node
// (CUDA kernels for the nodes placed on "cuda", host kernels for the rest), picks each layer's precision, and
// auto-tunes: tactics come from the plan, else from the timing cache, else they are measured by one run on zero
// inputs when every input shape is static (build-time tuning; dynamic shapes are tuned on their first run).
#include "src/backends/cuda/cuda_executor.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "src/ops/shape_utils.h"

namespace kiln::cuda {

namespace {

constexpr const char* kCacheMagic = "kiln-timing-cache 1";

std::map<std::string, std::string> parse_pairs(const std::string& text, char sep, char eq) {
    std::map<std::string, std::string> out;
    std::stringstream ss(text);
    std::string item;
    while (std::getline(ss, item, sep)) {
        size_t p = item.rfind(eq);
        if (p != std::string::npos && p > 0) out[item.substr(0, p)] = item.substr(p + 1);
    }
    return out;
}

std::string meta(const std::map<std::string, std::string>& m, const std::string& key, const std::string& def = "") {
    auto it = m.find(key);
    return it == m.end() ? def : it->second;
}

// A 2-D Max/AveragePool the device runs: it may sit inside the fp16/bf16 NHWC convolution chain (ResNet's stem).
bool is_chain_pool(const backends::KernelNode& kn) {
    return (kn.op_type == "MaxPool" || kn.op_type == "AveragePool") && supports_simple(kn);
}

LowType low_of(const std::string& precision) {
    return precision == "fp16" ? LowType::kF16 : precision == "bf16" ? LowType::kBF16 : LowType::kF32;
}

}  // namespace

CudaExecutor::CudaExecutor(const plan::PlanModel& m, Logger& logger, const backends::DeviceExecutorOptions& options)
    : m_(m), options_(options) {
    check_device(m.metadata);
    try {
        build(logger);
        load_timing_cache(logger);
        tune(logger);
        save_timing_cache(logger);
    } catch (...) {
        release();
        throw;
    }
}

void CudaExecutor::check_device(const std::map<std::string, std::string>& md) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess || count == 0) {
        cudaGetLastError();  // clear the sticky error
        const char* why = err == cudaSuccess ? "0 devices" : cudaGetErrorString(err);
        KILN_FAIL(kUnsupported, "no CUDA device found (", why,
                  "): this plan targets the CUDA backend; run it on a machine with an NVIDIA GPU and driver, or ",
                  "build it for --backend cpu");
    }
    int dev = 0;
    cudaDeviceProp prop{};
    KILN_CUDA_CHECK(cudaGetDevice(&dev), "cuda engine");
    KILN_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev), "cuda engine");
    arch_ = cat("sm_", prop.major, prop.minor);
    device_ = prop.name;
    lib_versions_ = cat("cudnn ", cudnnGetVersion(), " cublasLt ", cublasLtGetVersion());
    const std::string planned = meta(md, "cuda_arch");
    KILN_CHECK(planned.empty() || planned == arch_, kVersionMismatch, "this plan was built for a ", planned, " GPU (",
               meta(md, "cuda_device", "unknown"), ") but this GPU is ", arch_, " (", device_,
               "); its tactics are tuned for one GPU architecture: rebuild the plan on this machine (kiln build MODEL ",
               "--backend cuda)");
    const std::string precision = meta(md, "precision", "fp32");
    bool bf16 = precision == "bf16" || meta(md, "layer_precision").find("=bf16") != std::string::npos;
    KILN_CHECK(!bf16 || prop.major >= 8, kUnsupported, "bf16 needs a GPU of compute capability 8.0 or newer; this ",
               device_, " is ", arch_, ": build with --fp16 or fp32");
    // plan tactics are reused only by the same libraries; otherwise they are measured again
    if (meta(md, "cuda_libs") == lib_versions_)
        for (auto& [k, v] : parse_pairs(meta(md, "cuda_tactics"), '\n', '\t')) tactics_.put(k, v, false);
}

void CudaExecutor::build(Logger& logger) {
    size_t nn = m_.nodes.size();
    weights_dev_.assign(m_.weights.size(), nullptr);
    for (size_t w = 0; w < m_.weights.size(); ++w)
        weights_dev_[w] = upload(m_.weights[w].raw(), m_.weights[w].bytes(), cat("weight ", w));
    last_use_.assign(m_.values.size(), -1);
    is_output_.assign(m_.values.size(), 0);
    for (int32_t o : m_.outputs) is_output_[o] = 1;
    const std::string precision = meta(m_.metadata, "precision", "fp32");
    const bool tf32 = meta(m_.metadata, "tf32") == "1";
    const std::map<std::string, std::string> pinned = parse_pairs(meta(m_.metadata, "layer_precision"), ';', '=');
    cudnnHandle_t tuning = nullptr;
    if (cudnnCreate(&tuning) != CUDNN_STATUS_SUCCESS) tuning = nullptr;
    std::map<std::string, std::unique_ptr<backends::Backend>> host_backends;
    dev_kernels_.resize(nn);
    host_kernels_.resize(nn);
    size_t reduced = 0;
    // per node: what its kernel sees at build time, and the precision of its matmul/convolution
    std::vector<backends::KernelNode> kns;
    std::vector<LowType> lows(nn, LowType::kF32);
    std::vector<char> tf32s(nn, 0), chain(nn, 0);
    for (size_t i = 0; i < nn; ++i) {
        const plan::PlanNode& n = m_.nodes[i];
        backends::KernelNode kn{n.name, n.op_type, n.attrs, {}, {}};
        for (int32_t id : n.inputs) {
            kn.inputs.push_back(backends::plan_value_info(m_, id));
            if (id >= 0) last_use_[id] = static_cast<int>(i);
        }
        for (int32_t id : n.outputs) kn.outputs.push_back(backends::plan_value_info(m_, id));
        auto pin = pinned.find(n.name);
        const std::string& p = pin == pinned.end() ? precision : pin->second;
        lows[i] = low_of(p);
        tf32s[i] = tf32 && p == "fp32" && pin == pinned.end();
        std::string backend = n.backend.empty() ? m_.target_backend : n.backend;
        chain[i] = backend == "cuda" && ((supports_conv(kn) && uses_nhwc_chain(kn, lows[i])) ||
                                         (lows[i] != LowType::kF32 && is_chain_pool(kn)));
        kns.push_back(std::move(kn));
    }
    // Values kept in fp16/bf16 NHWC between convolutions: output 0 of a chain convolution (or 2-D Max/AveragePool)
    // whose every reader is a chain node of the same precision reading it as x (input 0) or as the residual (input 3);
    // never a graph output. Such a value needs half its planned bytes, so it fits the arena slot planned for fp32.
    std::vector<int> producer(m_.values.size(), -1);
    for (size_t i = 0; i < nn; ++i)
        for (int32_t id : m_.nodes[i].outputs) producer[id] = static_cast<int>(i);
    std::vector<char> low_nhwc(m_.values.size(), 0);
    for (size_t v = 0; v < m_.values.size(); ++v) {
        int p = producer[v];
        if (p < 0 || !chain[p] || m_.nodes[p].outputs[0] != static_cast<int32_t>(v) || is_output_[v]) continue;
        bool ok = true, read = false;
        for (size_t i = 0; i < nn && ok; ++i)
            for (size_t k = 0; k < m_.nodes[i].inputs.size(); ++k) {
                if (m_.nodes[i].inputs[k] != static_cast<int32_t>(v)) continue;
                read = true;
                ok &= chain[i] && lows[i] == lows[p] && (k == 0 || k == 3);
            }
        low_nhwc[v] = ok && read;
    }
    // Values kept in the layer's reduced type (fp16/bf16, the fp32 layout) between GPU nodes: a float value whose
    // producer and every reader allow it (low_io) at the same precision; never a graph output or a chain value.
    low_value_.assign(m_.values.size(), DataType::kFloat32);
    std::vector<LowIo> io(nn);
    for (size_t i = 0; i < nn; ++i) {
        const std::string& b = m_.nodes[i].backend.empty() ? m_.target_backend : m_.nodes[i].backend;
        if (b == "cuda" && lows[i] != LowType::kF32 && !chain[i]) io[i] = low_io(kns[i], lows[i]);
    }
    for (size_t v = 0; v < m_.values.size(); ++v) {
        int p = producer[v];
        if (p < 0 || is_output_[v] || low_nhwc[v] || m_.values[v].dtype != DataType::kFloat32) continue;
        size_t slot = 0;
        while (slot < m_.nodes[p].outputs.size() && m_.nodes[p].outputs[slot] != static_cast<int32_t>(v)) ++slot;
        if (slot >= 32 || !(io[p].out >> slot & 1)) continue;
        bool ok = true, read = false;
        for (size_t i = 0; i < nn && ok; ++i)
            for (size_t k = 0; k < m_.nodes[i].inputs.size() && ok; ++k) {
                if (m_.nodes[i].inputs[k] != static_cast<int32_t>(v)) continue;
                read = true;
                ok = k < 32 && (io[i].in >> k & 1) && lows[i] == lows[p];
            }
        if (ok && read) low_value_[v] = lows[p] == LowType::kBF16 ? DataType::kBFloat16 : DataType::kFloat16;
    }
    // data movement (Reshape-likes may alias their input; Transpose copies elements by size) keeps the type: its
    // input and output are both reduced or both fp32
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = 0; i < nn; ++i) {
            const plan::PlanNode& n = m_.nodes[i];
            if (!io[i].same_type || n.inputs.empty() || n.outputs.size() != 1 || n.inputs[0] < 0) continue;
            DataType& a = low_value_[n.inputs[0]];
            DataType& b = low_value_[n.outputs[0]];
            if (a != b) {
                a = b = DataType::kFloat32;
                changed = true;
            }
        }
    }
    try {
        for (size_t i = 0; i < nn; ++i) {
            const plan::PlanNode& n = m_.nodes[i];
            const ops::OpSchema* schema = ops::find_schema(n.op_type);
            KILN_CHECK(schema, kUnsupported, "node '", n.name, "': op '", n.op_type, "' is not supported");
            schemas_.push_back(schema);
            const backends::KernelNode& kn = kns[i];
            std::string backend = n.backend.empty() ? m_.target_backend : n.backend;
            try {
                if (backend == "cuda") {
                    KernelRequest r{kn, {}, lows[i], tf32s[i] != 0, tuning, &tactics_};
                    auto chained = [&](size_t k) {
                        return k < n.inputs.size() && n.inputs[k] >= 0 && low_nhwc[n.inputs[k]];
                    };
                    r.x_low_nhwc = chained(0);
                    r.z_low_nhwc = chained(3);
                    r.y_low_nhwc = low_nhwc[n.outputs[0]] != 0;
                    for (int32_t id : n.inputs) {
                        WeightView wv;
                        if (id >= 0 && m_.values[id].weight >= 0) {
                            wv.host = &m_.weights[m_.values[id].weight];
                            wv.device = weights_dev_[m_.values[id].weight];
                        }
                        r.weights.push_back(wv);
                    }
                    if (supports_gemm(kn)) dev_kernels_[i] = make_gemm(r);
                    else if (supports_gemm_norm(kn)) dev_kernels_[i] = make_gemm_norm(r);
                    else if (supports_conv(kn)) dev_kernels_[i] = make_conv(r);
                    else if (supports_simple(kn)) dev_kernels_[i] = make_simple(r);
                    else KILN_FAIL(kUnsupported, kn.where(), ": not supported by backend 'cuda'");
                    reduced += (supports_gemm(kn) || supports_gemm_norm(kn) || supports_conv(kn)) &&
                               r.low != LowType::kF32;
                } else {
                    auto& b = host_backends[backend];
                    if (!b) b = backends::make_backend(backend);
                    KILN_CHECK(b->supports(kn), kUnsupported, kn.where(), ": not supported by backend '", backend,
                               "'");
                    host_kernels_[i] = b->create_kernel(kn);
                }
            } catch (const Error& err) {
                if (std::string(err.what()).find(n.name) != std::string::npos) throw;
                throw Error(err.code(), cat(kn.where(), ": ", err.what()));
            }
        }
    } catch (...) {
        if (tuning) cudnnDestroy(tuning);
        throw;
    }
    if (tuning) cudnnDestroy(tuning);
    size_t on_device = 0, low_values = 0;
    for (auto& k : dev_kernels_) on_device += k != nullptr;
    for (DataType t : low_value_) low_values += t != DataType::kFloat32;
    logger.log(Severity::kVerbose, cat("cuda: ", on_device, " of ", nn, " nodes on the GPU (", device_, ", ", arch_,
                                       "); ", reduced, " matmuls/convolutions in reduced precision (", precision,
                                       tf32 ? ", tf32" : "", "), ", low_values, " activations stored in ", precision));
}

void CudaExecutor::tune(Logger& logger) {
    for (int32_t id : m_.inputs)
        if (!is_static(m_.values[id].dims)) return;  // tuned on the first run of each shape instead
    std::map<std::string, Tensor> zeros;
    for (int32_t id : m_.inputs) {
        Tensor t(m_.values[id].dtype, ops::to_concrete(m_.values[id].dims));
        if (t.bytes()) std::memset(t.raw(), 0, t.bytes());
        zeros[m_.values[id].name] = std::move(t);
    }
    int before = tactics_.measured();
    try {
        CudaContext ctx(*this);
        ctx.set_graphs(false);
        ctx.run(zeros);
    } catch (const Error& e) {
        // zeros are not valid input for every model (e.g. a value that must be positive); the real first run of
        // each shape tunes instead
        if (e.code() == ErrorCode::kOutOfMemory) throw;
        logger.log(Severity::kWarning, cat("cuda: build-time tuning on zero inputs failed (", e.what(),
                                           "); layers are tuned on their first run instead"));
        return;
    }
    logger.log(Severity::kVerbose, cat("cuda: auto-tuning measured ", tactics_.measured() - before, " problems, ",
                                       tactics_.all().size(), " tactics known"));
}

void CudaExecutor::load_timing_cache(Logger& logger) {
    const std::string& path = options_.timing_cache;
    if (path.empty() || !std::filesystem::exists(path)) return;
    std::ifstream f(path);
    std::string header;
    std::getline(f, header);
    const std::string expect = cat(kCacheMagic, " ", arch_, " ", lib_versions_);
    if (header != expect) {
        logger.log(Severity::kWarning, cat("timing cache '", path, "' was written for '", header, "', not '", expect,
                                           "': ignored (it will be rewritten)"));
        return;
    }
    std::string line;
    int n = 0;
    while (std::getline(f, line)) {
        size_t tab = line.rfind('\t');
        if (tab == std::string::npos || tab == 0) continue;
        std::string tactic;
        if (!tactics_.find(line.substr(0, tab), &tactic)) tactics_.put(line.substr(0, tab), line.substr(tab + 1), false);
        ++n;
    }
    logger.log(Severity::kVerbose, cat("timing cache '", path, "': ", n, " tactics"));
}

void CudaExecutor::save_timing_cache(Logger& logger) const {
    const std::string& path = options_.timing_cache;
    if (path.empty()) return;
    std::map<std::string, std::string> all = tactics_.all();
    // keep entries of other models already in the file
    if (std::filesystem::exists(path)) {
        std::ifstream f(path);
        std::string header, line;
        std::getline(f, header);
        if (header == cat(kCacheMagic, " ", arch_, " ", lib_versions_))
            while (std::getline(f, line)) {
                size_t tab = line.rfind('\t');
                if (tab != std::string::npos && tab > 0) all.emplace(line.substr(0, tab), line.substr(tab + 1));
            }
    }
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::trunc);
        KILN_CHECK(out.good(), kIoError, "cannot write the timing cache '", tmp, "'");
        out << kCacheMagic << " " << arch_ << " " << lib_versions_ << "\n";
        for (auto& [k, v] : all) out << k << "\t" << v << "\n";
        KILN_CHECK(out.good(), kIoError, "cannot write the timing cache '", tmp, "'");
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    KILN_CHECK(!ec, kIoError, "cannot write the timing cache '", path, "': ", ec.message());
    logger.log(Severity::kVerbose, cat("timing cache '", path, "': ", all.size(), " tactics written"));
}

std::string CudaExecutor::describe(size_t node) const {
    if (dev_kernels_[node]) return dev_kernels_[node]->describe();
    std::string d = host_kernels_[node] ? host_kernels_[node]->describe() : "";
    return d.empty() ? "host" : d + " (host)";
}

std::map<std::string, std::string> CudaExecutor::plan_metadata() const {
    std::string tactics;
    for (auto& [k, v] : tactics_.all()) tactics += cat(k, "\t", v, "\n");
    return {{"cuda_arch", arch_}, {"cuda_device", device_}, {"cuda_libs", lib_versions_}, {"cuda_tactics", tactics}};
}

void CudaExecutor::release() {
    dev_kernels_.clear();
    for (void* p : weights_dev_)
        if (p) cudaFree(p);
    weights_dev_.clear();
}

std::unique_ptr<backends::DeviceExecutor> make_cuda_executor(const plan::PlanModel& model, Logger& logger,
                                                             const backends::DeviceExecutorOptions& options) {
    return std::make_unique<CudaExecutor>(model, logger, options);
}

}  // namespace kiln::cuda
