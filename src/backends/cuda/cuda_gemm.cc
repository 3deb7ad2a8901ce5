// MatMul, FusedMatMul and Gemm on cuBLASLt. Row-major C[M,N] = A[M,K] B[K,N] is computed as the column-major
// product C^T = B^T A^T, so no transposes are materialised. Bias and ReLU / tanh-GELU run in cuBLASLt's epilogue,
// a residual Z as C with beta = 1; other activations in one elementwise epilogue kernel. FP16/BF16: A and B in
// fp16/bf16 (weights converted once at creation), C/D in fp32, fp32 accumulation (CUBLAS_COMPUTE_32F); --tf32: fp32
// operands on TF32 tensor cores (CUBLAS_COMPUTE_32F_FAST_TF32). FusedMatMul's `trans_b`=1 (a 2-D B given as [N, K])
// is cuBLASLt's transposed B.
// Auto-tuning: on the first run of each problem, the heuristic's best candidates are timed on the stream (into a
// scratch output) and the fastest is kept in the engine's TacticTable (hex of cublasLtMatmulAlgo_t), which the plan
// and the timing cache carry to later loads.
#include <cublasLt.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

#include "src/backends/activation.h"
#include "src/backends/cuda/cuda_common.h"
#include "src/ops/shape_utils.h"

namespace kiln::cuda {

using backends::ActivationKind;
using backends::KernelNode;

// Algorithms per problem (shapes, epilogue, pointer alignments), decoded from the engine's TacticTable.
struct LtAlgoCache {
    std::mutex mu;
    std::map<std::string, cublasLtMatmulAlgo_t> algos;
    std::string last;  // readable description of the last algorithm used, for `kiln inspect`
};

namespace {

void check_blas(cublasStatus_t st, const char* call, const std::string& what) {
    if (st == CUBLAS_STATUS_SUCCESS) return;
    KILN_FAIL(kInternal, what, ": cuBLASLt error ", cublasGetStatusString(st), " in ", call);
}
#define KILN_BLAS_CHECK(call, what) check_blas((call), #call, (what))

struct LtGemm {
    int64_t m = 0, n = 0, k = 0;  // row-major sizes of the product [m,n] = [m,k] x [k,n]
    bool trans_a = false, trans_b = false;
    int64_t batch = 1, stride_a = 0, stride_b = 0, stride_c = 0;
    int64_t lda = 0, ldb = 0;  // row strides of A and B when not packed (0: packed)
    float alpha = 1.f, beta = 0.f;
    const void* bias = nullptr;
    cudaDataType bias_type = CUDA_R_32F;
    ActivationKind act = ActivationKind::kNone;  // only kNone / kRelu / kGeluTanh here
};

constexpr int kCandidates = 16;  // heuristic results timed per problem



std::string algo_hex(const cublasLtMatmulAlgo_t& a) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (uint64_t w : a.data)
        for (int i = 60; i >= 0; i -= 4) out += digits[(w >> i) & 15];
    return out;
}

bool algo_from_hex(const std::string& hex, cublasLtMatmulAlgo_t* a) {
    if (hex.size() != 16 * (sizeof(a->data) / sizeof(a->data[0]))) return false;
    size_t pos = 0;
    for (uint64_t& w : a->data) {
        w = 0;
        for (int i = 0; i < 16; ++i, ++pos) {
            char c = hex[pos];
            int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (v < 0) return false;
            w = (w << 4) | static_cast<uint64_t>(v);
        }
    }
    return true;
}

std::string algo_desc(const cublasLtMatmulAlgo_t& a) {
    int id = 0, tile = 0, stages = 0, splitk = 1;
    size_t got = 0;
    cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof(id), &got);
    cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof(tile), &got);
    cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof(stages), &got);
    cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof(splitk), &got);
    return cat("algo ", id, " tile ", tile, " stages ", stages, " splitK ", splitk);
}

uint32_t alignment_of(const void* p) {
    auto a = reinterpret_cast<uintptr_t>(p);
    uint32_t al = 256;
    while (al > 4 && a % al) al >>= 1;
    return al;
}

bool env_on(const char* name) {
    const char* e = std::getenv(name);
    return e && *e && std::string(e) != "0";
}

// KILN_CUDA_GEMM_SEARCH=1: variants of the heuristic's first candidates with the other tiles and split-K counts
// their kernels offer (each checked by cuBLASLt against the problem and the workspace), timed with them. The
// heuristic ranks by a model of the kernel; on the small GEMMs of batch-1 transformers its picks leave most SMs idle.
std::vector<cublasLtMatmulAlgo_t> algo_variants(cublasLtHandle_t lt, cublasLtMatmulDesc_t op,
                                                cublasLtMatrixLayout_t la, cublasLtMatrixLayout_t lb,
                                                cublasLtMatrixLayout_t lc, const cublasLtMatmulHeuristicResult_t* heur,
                                                int found, int64_t k, size_t workspace_bytes) {
    constexpr int kBases = 4, kMaxVariants = 64;
    std::vector<cublasLtMatmulAlgo_t> out;
    std::vector<std::string> seen;
    for (int i = 0; i < found; ++i) seen.push_back(algo_hex(heur[i].algo));
    for (int i = 0; i < found && i < kBases; ++i) {
        const cublasLtMatmulAlgo_t& base = heur[i].algo;
        size_t got = 0;
        int tiles[128] = {};
        std::vector<int> tile_ids;
        if (cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_TILE_IDS, tiles, sizeof(tiles), &got) ==
                CUBLAS_STATUS_SUCCESS &&
            got <= sizeof(tiles))
            tile_ids.assign(tiles, tiles + got / sizeof(int));
        int cur_tile = 0, splitk_ok = 0;
        uint32_t schemes = 0;
        cublasLtMatmulAlgoConfigGetAttribute(&base, CUBLASLT_ALGO_CONFIG_TILE_ID, &cur_tile, sizeof(cur_tile), &got);
        if (tile_ids.empty()) tile_ids.push_back(cur_tile);
        cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_SPLITK_SUPPORT, &splitk_ok, sizeof(splitk_ok), &got);
        cublasLtMatmulAlgoCapGetAttribute(&base, CUBLASLT_ALGO_CAP_REDUCTION_SCHEME_MASK, &schemes, sizeof(schemes),
                                          &got);
        std::vector<int> splits = {0};  // 0: the base's own split
        if (splitk_ok)
            for (int sk : {1, 2, 3, 4, 6, 8})
                if (sk == 1 || (k % sk == 0 && k / sk >= 64)) splits.push_back(sk);
        uint32_t scheme = CUBLASLT_REDUCTION_SCHEME_INPLACE;
        if (schemes & CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE) scheme = CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
        else if (schemes & CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE) scheme = CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE;
        for (int sk : splits)
            for (int tile : tile_ids) {
                if (static_cast<int>(out.size()) >= kMaxVariants) return out;
                cublasLtMatmulAlgo_t a = base;
                if (cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof(tile)) !=
                    CUBLAS_STATUS_SUCCESS)
                    continue;
                if (sk > 0) {
                    const uint32_t sch = sk > 1 ? scheme : static_cast<uint32_t>(CUBLASLT_REDUCTION_SCHEME_NONE);
                    if (cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &sk, sizeof(sk)) !=
                            CUBLAS_STATUS_SUCCESS ||
                        cublasLtMatmulAlgoConfigSetAttribute(&a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &sch,
                                                             sizeof(sch)) != CUBLAS_STATUS_SUCCESS)
                        continue;
                }
                cublasLtMatmulHeuristicResult_t check{};
                if (cublasLtMatmulAlgoCheck(lt, op, la, lb, lc, lc, &a, &check) != CUBLAS_STATUS_SUCCESS ||
                    check.workspaceSize > workspace_bytes)
                    continue;
                std::string hex = algo_hex(a);
                if (std::find(seen.begin(), seen.end(), hex) != seen.end()) continue;
                seen.push_back(std::move(hex));
                out.push_back(a);
            }
    }
    return out;
}

// D = epilogue(alpha * A B + beta * C); a/b of type `ab` (R_32F, R_16F or R_16BF), c/d fp32.
void lt_matmul(const RunCtx& ctx, const LtGemm& g, const void* a, const void* b, cudaDataType ab, bool tf32,
               const void* c, void* d, LtAlgoCache& cache, TacticTable* tactics, cudaDataType cd = CUDA_R_32F) {
    const std::string& what = *ctx.node;
    cublasLtMatmulDesc_t op = nullptr;
    cublasLtMatrixLayout_t la = nullptr, lb = nullptr, lc = nullptr;
    cublasLtMatmulPreference_t pref = nullptr;
    struct Cleanup {
        cublasLtMatmulDesc_t& op;
        cublasLtMatrixLayout_t &la, &lb, &lc;
        cublasLtMatmulPreference_t& pref;
        ~Cleanup() {
            if (pref) cublasLtMatmulPreferenceDestroy(pref);
            if (lc) cublasLtMatrixLayoutDestroy(lc);
            if (lb) cublasLtMatrixLayoutDestroy(lb);
            if (la) cublasLtMatrixLayoutDestroy(la);
            if (op) cublasLtMatmulDescDestroy(op);
        }
    } cleanup{op, la, lb, lc, pref};
    cublasComputeType_t compute = tf32 && ab == CUDA_R_32F ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
    KILN_BLAS_CHECK(cublasLtMatmulDescCreate(&op, compute, CUDA_R_32F), what);
    // column-major: "A" operand = our B ([n,k] after op), "B" operand = our A
    cublasOperation_t op_first = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
    cublasOperation_t op_second = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
    KILN_BLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &op_first, sizeof(op_first)),
                    what);
    KILN_BLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &op_second, sizeof(op_second)),
                    what);
    cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
    if (g.act == ActivationKind::kRelu) epi = g.bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU;
    else if (g.act == ActivationKind::kGeluTanh) epi = g.bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
    else if (g.bias) epi = CUBLASLT_EPILOGUE_BIAS;
    KILN_BLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)), what);
    if (g.bias) {
        cudaDataType bt = g.bias_type;
        KILN_BLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &g.bias, sizeof(g.bias)),
                        what);
        KILN_BLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)),
                        what);
    }
    // stored layouts (column-major): our B is [k,n] row-major = [n,k] col-major (ld n), or [k,n] col-major if trans
    if (g.trans_b) KILN_BLAS_CHECK(cublasLtMatrixLayoutCreate(&la, ab, g.k, g.n, g.ldb ? g.ldb : g.k), what);
    else KILN_BLAS_CHECK(cublasLtMatrixLayoutCreate(&la, ab, g.n, g.k, g.ldb ? g.ldb : g.n), what);
    if (g.trans_a) KILN_BLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, ab, g.m, g.k, g.m), what);
    else KILN_BLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, ab, g.k, g.m, g.lda ? g.lda : g.k), what);
    KILN_BLAS_CHECK(cublasLtMatrixLayoutCreate(&lc, cd, g.n, g.m, g.n), what);
    if (g.batch > 1) {
        int32_t count = static_cast<int32_t>(g.batch);
        auto set_batch = [&](cublasLtMatrixLayout_t l, int64_t stride) {
            KILN_BLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                             sizeof(count)), what);
            KILN_BLAS_CHECK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                                             sizeof(stride)), what);
        };
        set_batch(la, g.stride_b);
        set_batch(lb, g.stride_a);
        set_batch(lc, g.stride_c);
    }
    // "A" operand = b, "B" operand = a (see above)
    uint32_t al_a = alignment_of(b), al_b = alignment_of(a), al_c = alignment_of(c ? c : d), al_d = alignment_of(d);
    std::string key = cat(g.m, ",", g.n, ",", g.k, ",", g.batch, ",", g.stride_a, ",", g.stride_b, ",",
                          g.lda || g.ldb ? cat("ld", g.lda, ":", g.ldb, ",") : std::string(), g.trans_a,
                          g.trans_b, ",", static_cast<int>(epi), ",", g.beta != 0.f, ",", static_cast<int>(ab), ",",
                          static_cast<int>(compute), ",", static_cast<int>(cd), ",", al_a, ",", al_b, ",", al_c, ",", al_d);
    cublasLtMatmulAlgo_t algo{};
    bool local = false, cached = false;
    {
        std::lock_guard<std::mutex> lock(cache.mu);
        auto it = cache.algos.find(key);
        if (it != cache.algos.end()) algo = it->second, local = cached = true;
    }
    std::string table_key = "gemm|" + key, tactic;
    if (!cached && tactics && tactics->find(table_key, &tactic) && algo_from_hex(tactic, &algo)) {
        // from the plan or the timing cache: still checked against this problem and workspace
        cublasLtMatmulHeuristicResult_t check{};
        cached = cublasLtMatmulAlgoCheck(ctx.lt, op, la, lb, lc, lc, &algo, &check) == CUBLAS_STATUS_SUCCESS &&
                 check.workspaceSize <= ctx.workspace_bytes;
    }
    if (!cached) {
        KILN_BLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref), what);
        size_t ws = ctx.workspace_bytes;
        KILN_BLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                                             sizeof(ws)), what);
        const std::pair<cublasLtMatmulPreferenceAttributes_t, uint32_t> aligns[] = {
            {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, al_a}, {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, al_b},
            {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, al_c}, {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, al_d}};
        for (auto& [attr, v] : aligns)
            KILN_BLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, attr, &v, sizeof(v)), what);
        cublasLtMatmulHeuristicResult_t heur[kCandidates] = {};
        int found = 0;
        KILN_BLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(ctx.lt, op, la, lb, lc, lc, pref, kCandidates, heur, &found),
                        what);
        KILN_CHECK(found > 0, kUnsupported, what, ": cuBLASLt has no algorithm for this matmul (m=", g.m, " n=", g.n,
                   " k=", g.k, " batch=", g.batch, ")");
        std::vector<cublasLtMatmulAlgo_t> cands;
        for (int i = 0; i < found; ++i) cands.push_back(heur[i].algo);
        cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
        cudaStreamIsCapturing(ctx.stream, &capturing);
        const bool can_time = capturing == cudaStreamCaptureStatusNone;
        if (can_time && env_on("KILN_CUDA_GEMM_SEARCH")) {
            std::vector<cublasLtMatmulAlgo_t> more =
                algo_variants(ctx.lt, op, la, lb, lc, heur, found, g.k, ctx.workspace_bytes);
            cands.insert(cands.end(), more.begin(), more.end());
        }
        int best = 0;
        if (cands.size() > 1 && can_time) {
            // time each candidate (3 launches after one warm-up) into a scratch D, so C == D stays intact
            Scratch scratch(ctx.stream, what);
            size_t d_elems = static_cast<size_t>(g.batch > 1 ? g.batch * g.stride_c : g.m * g.n);
            void* dt = scratch.get(d_elems * (cd == CUDA_R_32F ? 4 : 2));
            std::vector<float> times;
            best = fastest_candidate(
                ctx.stream, static_cast<int>(cands.size()),
                [&](int i) {
                    return cublasLtMatmul(ctx.lt, op, &g.alpha, b, la, a, lb, &g.beta, c ? c : dt, lc, dt, lc,
                                          &cands[static_cast<size_t>(i)], ctx.workspace, ctx.workspace_bytes,
                                          ctx.stream) == CUBLAS_STATUS_SUCCESS;
                },
                what, 3, &times);
            if (env_on("KILN_CUDA_TUNE_LOG")) {
                auto us = [&](int i) { return 1e3f * times[static_cast<size_t>(i)]; };
                float heur_best = 1e30f;
                for (int i = 0; i < found; ++i)
                    if (us(i) >= 0) heur_best = std::min(heur_best, us(i));
                std::fprintf(stderr,
                             "tune gemm %s: %zu candidates (%d heuristic): best #%d %s %.2f us; heuristic's best "
                             "%.2f us, its first %.2f us\n",
                             key.c_str(), cands.size(), found, best,
                             algo_desc(cands[static_cast<size_t>(best)]).c_str(), us(best), heur_best, us(0));
            }
        }
        algo = cands[static_cast<size_t>(best)];
        if (tactics) tactics->put(table_key, algo_hex(algo), cands.size() > 1);
        std::lock_guard<std::mutex> lock(cache.mu);
        cache.algos[key] = algo;
        cache.last = algo_desc(algo);
    } else if (!local) {
        std::lock_guard<std::mutex> lock(cache.mu);
        cache.algos[key] = algo;
        cache.last = algo_desc(algo);
    }
    KILN_BLAS_CHECK(cublasLtMatmul(ctx.lt, op, &g.alpha, b, la, a, lb, &g.beta, c ? c : d, lc, d, lc, &algo,
                                   ctx.workspace, ctx.workspace_bytes, ctx.stream), what);
}

}  // namespace

std::shared_ptr<LtAlgoCache> make_lt_algo_cache() { return std::make_shared<LtAlgoCache>(); }

std::string lt_algo_last(LtAlgoCache& cache) {
    std::lock_guard<std::mutex> lock(cache.mu);
    return cache.last;
}

void lt_gemm_nt_low(const RunCtx& ctx, int64_t m, int64_t n, int64_t k, const void* a, const void* b_nk, LowType t,
                    void* d, LtAlgoCache& cache, TacticTable* tactics, const void* bias, const void* residual,
                    bool relu) {
    LtGemm g;
    g.m = m, g.n = n, g.k = k;
    g.trans_b = true;
    cudaDataType dt = t == LowType::kBF16 ? CUDA_R_16BF : CUDA_R_16F;
    g.bias = bias;
    g.bias_type = dt;
    g.beta = residual ? 1.f : 0.f;
    g.act = relu ? ActivationKind::kRelu : ActivationKind::kNone;
    lt_matmul(ctx, g, a, b_nk, dt, false, residual, d, cache, tactics, dt);
}

void lt_gemm_strided_low(const RunCtx& ctx, int64_t m, int64_t n, int64_t k, int64_t batch, const void* a,
                         int64_t stride_a, const void* b, int64_t stride_b, bool trans_b, LowType t, float* d,
                         int64_t stride_d, float alpha, LtAlgoCache& cache, TacticTable* tactics) {
    LtGemm g;
    g.m = m, g.n = n, g.k = k;
    g.trans_b = trans_b;
    g.batch = batch, g.stride_a = stride_a, g.stride_b = stride_b, g.stride_c = stride_d;
    g.alpha = alpha;
    cudaDataType ab = t == LowType::kBF16 ? CUDA_R_16BF : CUDA_R_16F;
    lt_matmul(ctx, g, a, b, ab, false, nullptr, d, cache, tactics, CUDA_R_32F);
}

void lt_gemm_splitk(const RunCtx& ctx, int64_t m, int64_t n, int64_t k, int splits, const void* a, const void* b,
                    bool trans_b, LowType t, bool tf32, float* part, LtAlgoCache& cache, TacticTable* tactics) {
    LtGemm g;
    const int64_t ks = k / splits;
    g.m = m, g.n = n, g.k = ks;
    g.trans_b = trans_b;
    g.lda = k;                  // a slice of A's columns
    g.ldb = trans_b ? k : n;    // a slice of B's rows (of its columns when given as [n, k])
    g.batch = splits;
    g.stride_a = ks;
    g.stride_b = trans_b ? ks : ks * n;
    g.stride_c = m * n;
    const cudaDataType ab = t == LowType::kBF16 ? CUDA_R_16BF : t == LowType::kF16 ? CUDA_R_16F : CUDA_R_32F;
    lt_matmul(ctx, g, a, b, ab, tf32, nullptr, part, cache, tactics, CUDA_R_32F);
}

namespace {

// Copies `src` (broadcastable to `shape`) into the contiguous fp32 tensor `dst`.
void broadcast_into(const RunCtx& ctx, const DevTensor& src, float* dst, const Shape& shape) {
    StridedDims d;
    d.rank = static_cast<int>(shape.size());
    std::vector<int64_t> ss = ops::broadcast_strides(src.shape, shape), ds = contiguous_strides(shape);
    for (int i = 0; i < d.rank; ++i) d.shape[i] = shape[i], d.src_strides[i] = ss[i], d.dst_strides[i] = ds[i];
    launch_strided_copy(src.data, dst, d, 4, ctx.stream);
}

class GemmKernel : public DeviceKernel {
public:
    explicit GemmKernel(const KernelRequest& r)
        : where_(r.node.where()), low_(r.low), tf32_(r.tf32), tactics_(r.tactics) {
        const KernelNode& n = r.node;
        op_ = n.op_type;
        if (op_ == "FusedMatMul") {
            act_ = backends::Activation::from_attrs(n.attrs, where_);
            trans_b_ = n.attrs.get_int("trans_b", 0) != 0;
        }
        if (op_ == "Gemm") {
            trans_a_ = n.attrs.get_int("transA", 0) != 0;
            trans_b_ = n.attrs.get_int("transB", 0) != 0;
            alpha_ = n.attrs.get_float("alpha", 1.f);
            beta_ = n.attrs.get_float("beta", 1.f);
        }
        // fp16/bf16 layers take erf GELU from cuBLASLt's epilogue, which computes the tanh form: the two differ by at
        // most 4.7e-4 (at x = 2.7, where fp16's step is 2e-3), below the rounding of the fp16 result, and the GEMM
        // writes its output once instead of twice. KILN_CUDA_EXACT_GELU=1 keeps erf (a separate kernel).
        const char* exact = std::getenv("KILN_CUDA_EXACT_GELU");
        gelu_as_tanh_ = low_ != LowType::kF32 && act_.kind == ActivationKind::kGelu &&
                        !(exact && std::string(exact) == "1");
        if (low_ != LowType::kF32)
            for (int i = 0; i < 3 && i < static_cast<int>(r.weights.size()); ++i)
                if (r.weights[i].host && (i < 2 || op_ != "Gemm")) low_w_[i] = upload_low(*r.weights[i].host, low_, where_);
    }
    ~GemmKernel() override {
        for (void* p : low_w_)
            if (p) cudaFree(p);
    }

    std::string describe() const override {
        std::string last;
        {
            std::lock_guard<std::mutex> lock(cache_->mu);
            last = cache_->last;
        }
        return cat("gemm_", low_ != LowType::kF32 ? cat(low_name(low_), "f32acc") : tf32_ ? "tf32" : "f32",
                   "_cublaslt", gelu_as_tanh_ ? "+gelu_tanh" : act_.kind != ActivationKind::kNone ? "+act" : "", last.empty() ? "" : " [" + last + "]");
    }

    void run(const RunCtx& ctx, const std::vector<const DevTensor*>& in,
             const std::vector<DevTensor*>& out) const override {
        const DevTensor &a = *in[0], &b = *in[1];
        DevTensor& y = *out[0];
        if (y.numel() == 0) return;
        Scratch scratch(ctx.stream, *ctx.node);
        const void* ap = a.data;
        const void* bp = b.data;
        cudaDataType ab = CUDA_R_32F, cd = CUDA_R_32F;
        // values the executor keeps in the reduced type (fp16/bf16 instead of fp32, same layout) come as they are
        const bool y_low = y.dtype != DataType::kFloat32;
        if (low_ != LowType::kF32) {
            ab = low_ == LowType::kF16 ? CUDA_R_16F : CUDA_R_16BF;
            if (y_low) cd = ab;
            auto convert = [&](const DevTensor& t, void* pre) -> const void* {
                if (pre) return pre;
                if (t.dtype != DataType::kFloat32) return t.data;
                void* p = scratch.get(t.numel() * 2);
                launch_f32_to_low(t.as<float>(), p, low_, t.numel(), ctx.stream);
                return p;
            };
            ap = convert(a, low_w_[0]);
            bp = convert(b, low_w_[1]);
        }
        size_t es = low_size(low_), ys = dtype_size(y.dtype);
        auto mm = [&](const LtGemm& g, const void* x, const void* w, const void* c, void* d) {
            lt_matmul(ctx, g, x, w, ab, tf32_, c, d, *cache_, tactics_, cd);
        };
        LtGemm g;
        g.alpha = alpha_;
        const DevTensor* bias = in.size() > 2 ? in[2] : nullptr;
        const DevTensor* z = in.size() > 3 ? in[3] : nullptr;
        const void* c = nullptr;
        if (op_ == "Gemm") {
            g.trans_a = trans_a_, g.trans_b = trans_b_;
            g.m = y.shape[0], g.n = y.shape[1], g.k = trans_a_ ? a.shape[0] : a.shape[1];
            if (bias && beta_ != 0.f) {  // C broadcast into Y, then Y = alpha A B + beta Y (Y fp32: see low_io)
                broadcast_into(ctx, *bias, y.as<float>(), y.shape);
                c = y.data;
                g.beta = beta_;
            }
            mm(g, ap, bp, c, y.data);
            return;
        }
        // MatMul / FusedMatMul with numpy semantics
        const Shape &as = a.shape, &bs = b.shape, &ysh = y.shape;
        int ar = static_cast<int>(as.size()), br = static_cast<int>(bs.size());
        g.k = as[ar - 1];
        g.n = br == 1 ? 1 : bs[br - 1];
        if (trans_b_) {  // B is [N, K] (supports_gemm checked it is 2-D)
            g.trans_b = true;
            g.n = bs[0];
        }
        g.m = ar == 1 ? 1 : as[ar - 2];
        if (bias) {
            KILN_CHECK(bias->numel() == g.n, kUnsupported, where_, ": bias of shape ", shape_str(bias->shape),
                       " is not a vector along the last dimension (", g.n, ")");
            g.bias = bias->data;
            if (y_low) {  // cuBLASLt takes the bias in D's type
                g.bias_type = cd;
                if (low_w_[2]) {
                    g.bias = low_w_[2];
                } else {
                    void* p = scratch.get(bias->numel() * 2);
                    launch_f32_to_low(bias->as<float>(), p, low_, bias->numel(), ctx.stream);
                    g.bias = p;
                }
            }
        }
        if (z) {
            // C has D's type: the residual as stored when that matches, else converted / broadcast into scratch
            const bool z_low = z->dtype != DataType::kFloat32;
            if (z->numel() == y.numel() && z_low == y_low) {
                c = z->data;
            } else if (z->numel() == y.numel() && z_low) {
                float* p = static_cast<float*>(scratch.get(y.numel() * 4));
                launch_low_to_f32(z->data, low_, p, y.numel(), ctx.stream);
                c = p;
            } else if (z->numel() == y.numel()) {
                void* p = scratch.get(y.numel() * 2);
                launch_f32_to_low(z->as<float>(), p, low_, y.numel(), ctx.stream);
                c = p;
            } else {
                KILN_CHECK(!z_low, kInternal, where_, ": a broadcast residual must be fp32");
                float* p = y_low ? static_cast<float*>(scratch.get(y.numel() * 4)) : y.as<float>();
                broadcast_into(ctx, *z, p, ysh);
                if (y_low) {
                    void* q = scratch.get(y.numel() * 2);
                    launch_f32_to_low(p, q, low_, y.numel(), ctx.stream);
                    c = q;
                } else {
                    c = p;
                }
            }
            g.beta = 1.f;
        }
        // erf GELU in a reduced-precision layer: cuBLASLt's tanh-GELU epilogue (see gelu_as_tanh_)
        bool lt_act = act_.kind == ActivationKind::kRelu || act_.kind == ActivationKind::kGeluTanh || gelu_as_tanh_;
        if (lt_act) g.act = gelu_as_tanh_ ? ActivationKind::kGeluTanh : act_.kind;
        int64_t a_batch = a.numel() / (g.m * g.k), b_batch = b.numel() / (g.k * g.n);
        int64_t y_batch = y.numel() / (g.m * g.n);
        if (br <= 2) {  // weights-style: fold A's batch into M
            g.m *= a_batch;
            mm(g, ap, bp, c, y.data);
        } else if ((a_batch == y_batch || a_batch == 1) && (b_batch == y_batch || b_batch == 1)) {
            g.batch = y_batch;
            g.stride_a = a_batch == 1 ? 0 : g.m * g.k;
            g.stride_b = b_batch == 1 ? 0 : g.k * g.n;
            g.stride_c = g.m * g.n;
            mm(g, ap, bp, c, y.data);
        } else {  // general broadcast of batch dims: one product per output matrix
            Shape yb(ysh.begin(), ysh.end() - 2), abt(as.begin(), as.end() - 2), bbt(bs.begin(), bs.end() - 2);
            std::vector<int64_t> sa = ops::broadcast_strides(abt, yb), sb = ops::broadcast_strides(bbt, yb);
            std::vector<int64_t> idx(yb.size(), 0);
            for (int64_t i = 0; i < y_batch; ++i) {
                int64_t oa = 0, ob = 0;
                for (size_t d = 0; d < yb.size(); ++d) oa += idx[d] * sa[d], ob += idx[d] * sb[d];
                const char* api = static_cast<const char*>(ap) + oa * g.m * g.k * es;
                const char* bpi = static_cast<const char*>(bp) + ob * g.k * g.n * es;
                char* yi = static_cast<char*>(y.data) + i * g.m * g.n * ys;
                mm(g, api, bpi, c ? static_cast<const char*>(c) + i * g.m * g.n * ys : nullptr, yi);
                for (int d = static_cast<int>(yb.size()) - 1; d >= 0; --d) {
                    if (++idx[d] < yb[d]) break;
                    idx[d] = 0;
                }
            }
        }
        if (!lt_act && act_.kind != ActivationKind::kNone) {
            DevAct da{static_cast<int>(act_.kind), act_.alpha, act_.beta};
            const LowType yt = y_low ? low_ : LowType::kF32;
            launch_bias_act_epilogue(y.data, yt, y.data, yt, nullptr, nullptr, y.numel(), 1, 1, da, ctx.stream);
        }
    }

private:
    std::string where_;
    std::string op_;
    LowType low_ = LowType::kF32;
    bool tf32_ = false;
    TacticTable* tactics_ = nullptr;
    bool trans_a_ = false, trans_b_ = false;
    float alpha_ = 1.f, beta_ = 1.f;
    backends::Activation act_;
    bool gelu_as_tanh_ = false;
    void* low_w_[3] = {nullptr, nullptr, nullptr};  // fp16/bf16 copies of constant A, B and the bias
    std::unique_ptr<LtAlgoCache> cache_ = std::make_unique<LtAlgoCache>();
};

}  // namespace

bool supports_gemm(const KernelNode& n) {
    const std::string& op = n.op_type;
    if (op != "MatMul" && op != "FusedMatMul" && op != "Gemm") return false;
    for (const auto& t : n.inputs)
        if (t.present && t.dtype != DataType::kFloat32) return false;
    if (n.outputs[0].dtype != DataType::kFloat32) return false;
    if (n.inputs[0].rank() < 1 || n.inputs[1].rank() < 1) return false;
    if (op == "FusedMatMul") {
        if (n.attrs.get_int("trans_b", 0) != 0 && n.inputs[1].rank() != 2) return false;
        try {
            backends::Activation::from_attrs(n.attrs, n.where());
        } catch (const Error&) {
            return false;
        }
    }
    return true;
}

std::unique_ptr<DeviceKernel> make_gemm(const KernelRequest& r) { return std::make_unique<GemmKernel>(r); }

}  // namespace kiln::cuda
