#pragma once
// Launchers of kiln's own CUDA kernels (the *.cu files). Plain C++ types only, so that nvcc compiles the kernels
// without kiln's other headers.
#include <cuda_runtime.h>

#include <cstdint>

namespace kiln::cuda {

// ---------------------------------------------------------------- launchers of kiln's CUDA kernels (*.cu)
constexpr int kMaxDims = 8;
struct StridedDims {
    int rank = 0;
    int64_t shape[kMaxDims] = {};
    int64_t src_strides[kMaxDims] = {};  // elements
    int64_t dst_strides[kMaxDims] = {};
};
// Activations mirrored from src/backends/activation.h.
struct DevAct {
    int kind = 0;  // backends::ActivationKind as int
    float alpha = 0.f, beta = 0.f;
};

/// Storage type of the reduced-precision operands of matmuls and convolutions (accumulation is always fp32).
enum class LowType : int { kF32 = 0, kF16 = 1, kBF16 = 2 };

/// Block size and grid of the grid-stride (one element per thread and step) kernels.
constexpr int kEwThreads = 256;
inline unsigned ew_blocks(int64_t n) {
    int64_t b = (n + kEwThreads - 1) / kEwThreads;
    return static_cast<unsigned>(b < 65535 * 8 ? (b > 0 ? b : 1) : 65535 * 8);
}

void launch_strided_copy(const void* src, void* dst, const StridedDims& d, int elem_size, cudaStream_t s);
/// dst (fp16 or bf16) = round-to-nearest-even(src).
void launch_f32_to_low(const float* src, void* dst, LowType t, int64_t n, cudaStream_t s);
/// dst (fp32) = src (fp16 or bf16).
void launch_low_to_f32(const void* src, LowType t, float* dst, int64_t n, cudaStream_t s);
// conv_layout.cu: the fp16/bf16 NHWC convolution chain (see cuda_conv.cc)
void launch_nchw_f32_to_nhwc_low(const float* src, void* dst, LowType t, int64_t n, int64_t c, int64_t hw,
                                 cudaStream_t s);
/// y = act(conv + bias[c] + z): conv NHWC of type t; z / y NHWC of type t when z_low / y_low, else fp32 NCHW.
/// y[n, oy, ox, :] = x[n, oy * sh, ox * sw, :] for 16-bit NHWC values (a strided 1x1 convolution's input pixels).
void launch_subsample_nhwc_16bit(const void* x, void* y, int64_t n, int64_t h, int64_t w, int64_t c, int sh, int sw,
                                 int64_t oh, int64_t ow, cudaStream_t s);
void launch_conv_epilogue_nhwc(const void* conv, LowType t, const float* bias, const void* z, bool z_low, void* y,
                               bool y_low, int64_t n, int64_t c, int64_t hw, DevAct act, cudaStream_t s);
/// y = act(x + bias[channel] + z) with channel = (i / inner) % channels; x of type `xt`, y of type `yt` (y may be
/// x: in place), bias/z optional.
void launch_bias_act_epilogue(const void* x, LowType xt, void* y, LowType yt, const float* bias, const float* z,
                              int64_t n, int64_t channels, int64_t inner, DevAct act, cudaStream_t s);

// elementwise.cu: unary op codes and binary op codes
enum class UnaryOp : int { kRelu, kSigmoid, kTanh, kGelu, kErf, kExp, kLog, kSqrt, kNeg, kAbs, kReciprocal,
                           kLeakyRelu, kElu, kHardSigmoid, kHardSwish, kSoftplus, kClip, kSelu, kGeluTanh };
enum class BinaryOp : int { kAdd, kSub, kMul, kDiv, kPow, kMin, kMax, kPRelu };
void launch_unary_f32(UnaryOp op, const float* x, float* y, int64_t n, float alpha, float beta, cudaStream_t s);
/// out[i] = op(a[bcast], b[bcast]); strides in elements (0 on broadcast dims), rank <= kMaxDims.
void launch_binary_f32(BinaryOp op, const float* a, const float* b, float* y, const StridedDims& da,
                       const int64_t* b_strides, int64_t n, cudaStream_t s);
void launch_where_f32(const uint8_t* c, const float* a, const float* b, float* y, const StridedDims& d,
                      const int64_t* a_strides, const int64_t* b_strides, int64_t n, cudaStream_t s);

// mask_ops.cu: Cast between f32/f64/int8/uint8/int32/int64/bool (dtype codes = kiln::DataType), and logical /
// comparison ops with a bool output (a and b of `dtype`; b broadcast with b_strides, a with da.src_strides).
enum LogicOp : int { kLogicAnd, kLogicOr, kLogicNot, kLogicEqual, kLogicLess, kLogicGreater,
                     kLogicLessOrEqual, kLogicGreaterOrEqual };
void launch_cast(const void* x, int src_dtype, void* y, int dst_dtype, int64_t n, cudaStream_t s);
void launch_logic(int op, const void* a, const void* b, int dtype, uint8_t* y, const StridedDims& da,
                  const int64_t* b_strides, int64_t n, cudaStream_t s);

// norm.cu
/// LayerNormalization / RMSNormalization over rows of `cols` (scale/bias have `cols` elements; bias may be null);
/// x of type xt, y of type yt, fp32 statistics.
void launch_layer_norm_rowwise(const void* x, LowType xt, const float* scale, const float* bias, void* y, LowType yt,
                               int64_t rows, int64_t cols, float eps, bool rms, cudaStream_t s);
void launch_softmax_f32(const float* x, float* y, int64_t outer, int64_t axis_len, int64_t inner, bool log,
                        cudaStream_t s);

// embed_norm.cu: EmbedLayerNorm. S = table[ids[r]] + addend[r % addend_rows] (addend optional, [addend_rows, cols]),
// Y = LayerNorm(S) * gamma + beta per row r < rows; ids int64 (int32 when ids32), indices < 0 count from the end and
// out-of-range ones are clamped (never a fault); Y and the optional S stored as y_type / s_type.
struct EmbedNormArgs {
    const void* ids = nullptr;
    bool ids32 = false;
    const float* table = nullptr;
    int64_t vocab = 0;
    const float* addend = nullptr;
    int64_t addend_rows = 1;
    const float *gamma = nullptr, *beta = nullptr;
    void* y = nullptr;
    LowType y_type = LowType::kF32;
    void* s = nullptr;
    LowType s_type = LowType::kF32;
    int64_t rows = 0;
    int cols = 0;
    float eps = 1e-5f;
};
void launch_embed_layer_norm(const EmbedNormArgs& a, cudaStream_t s);

// matmul_norm.cu: FusedMatMulNorm's epilogue. S = sum_p part[p] + bias + z, y = LayerNorm(S) * gamma + beta per row of
// `cols`; part: `parts` fp32 [rows, cols] products part_stride elements apart; z / y / s stored as the layer's reduced
// type t when *_low, else fp32; bias, z, beta and s optional (s: S is also written).
struct MatMulNormArgs {
    const float* part = nullptr;
    int parts = 1;
    int64_t part_stride = 0;
    const float* bias = nullptr;
    const void* z = nullptr;
    bool z_low = false;
    const float *gamma = nullptr, *beta = nullptr;
    void* y = nullptr;
    bool y_low = false;
    void* s = nullptr;
    bool s_low = false;
    int64_t rows = 0;
    int cols = 0;
    float eps = 1e-5f;
    bool normalize = true;  // set by the launcher
    // rows wider than kMatMulNormMaxCols with no S wanted: rows * cols floats of scratch for S (the LayerNormalization
    // kernel reads it back)
    float* wide = nullptr;
};
constexpr int kMatMulNormMaxCols = 1024;  // rows the epilogue normalizes in registers (32 lanes x 32 values)
void launch_matmul_norm_epilogue(const MatMulNormArgs& args, LowType t, cudaStream_t s);

// attention.cu / attention_mma.cu. Every offset and stride is in elements; the head batch (the output's batch dims,
// with the heads appended in the head-packed layout, see src/backends/attention_geometry.h) has up to 5 dims.
constexpr int kMaxAttentionBatch = 5;
struct AttentionDims {
    int batch_rank = 0;
    int64_t batch[kMaxAttentionBatch] = {};
    int64_t q_bstride[kMaxAttentionBatch] = {}, k_bstride[kMaxAttentionBatch] = {},
            v_bstride[kMaxAttentionBatch] = {}, o_bstride[kMaxAttentionBatch] = {},
            m_bstride[kMaxAttentionBatch] = {};
    int64_t q_base = 0, k_base = 0, v_base = 0;
    // stride between consecutive query / key / value / output rows (k_transposed: between K's head-dim rows)
    int64_t q_row = 0, k_row = 0, v_row = 0, o_row = 0;
    int64_t sq = 0, sk = 0, d = 0, dv = 0;
    int64_t m_row_stride = 0, m_col_stride = 0;  // mask strides over (query, key)
    bool k_transposed = false, mask_bool = false, has_mask = false;
    float scale = 1.f;
};
/// Softmax over the last axis of scaled scores [rows = batch * sq, sk] (fp32) plus the mask of `d`, written as
/// fp16/bf16 probabilities (the reduced-precision attention: Q K^T GEMM -> this -> P V GEMM).
void launch_attention_softmax_low(const float* scores, const void* mask, void* probs, LowType t,
                                  const AttentionDims& d, int64_t rows, cudaStream_t s);
void launch_attention_f32(const float* q, const float* k, const float* v, const void* mask, float* out,
                          const AttentionDims& d, cudaStream_t s);
/// K given transposed (d.k_transposed: [.., d, sk] per head, ViT's export) copied as dense key rows [nb, sk, d] of
/// type t into dst (nb * sk * d elements), and `dense` set to d with K read from there. False (nothing launched) when
/// K is not transposed or the head batch exceeds a grid dimension. k_low: k is stored as t, else fp32.
bool launch_k_rows_low(const void* k, bool k_low, void* dst, LowType t, const AttentionDims& d,
                       AttentionDims* dense, cudaStream_t s);
/// True when launch_attention_mma runs these dims (head dims multiples of 16 up to 128, compute capability >= 8.0).
bool attention_mma_fits(int64_t d, int64_t dv);
/// Fused attention on tensor cores (mma.sync, fp16/bf16 operands of type t, fp32 softmax statistics and
/// accumulation), flash style: the scores never leave the chip. Q/K/V are of type t when in_low, else fp32 (converted
/// while staged); out of type t when out_low, else fp32. `sms`: the GPU's multiprocessor count (sizes the blocks).
void launch_attention_mma(const void* q, const void* k, const void* v, bool in_low, const void* mask, void* out,
                          bool out_low, LowType t, const AttentionDims& d, int sms, cudaStream_t s);

// tensor_ops.cu
void launch_gather(const void* x, const int64_t* idx, void* y, int64_t outer, int64_t axis_len, int64_t n_idx,
                   int64_t inner, int elem_size, cudaStream_t s);
struct PoolDims {
    int64_t n = 0, c = 0, h = 0, w = 0, oh = 0, ow = 0;
    int kh = 1, kw = 1, sh = 1, sw = 1, ph = 0, pw = 0, dh = 1, dw = 1;
    bool max = true, count_include_pad = false;
};
void launch_pool2d_f32_nchw(const float* x, float* y, const PoolDims& p, cudaStream_t s);
/// conv_layout.cu: a pool inside the fp16/bf16 NHWC chain (x / y in the chain's layout when x_low / y_low).
void launch_pool2d_chain(const void* x, bool x_low, void* y, bool y_low, LowType t, const PoolDims& p,
                         cudaStream_t s);
/// depthwise_nhwc.cu: y = act(depthwise conv(x) + bias + z) with x, z and y in the chain's layout (NHWC, type t);
/// geometry in p (c channels, multiplier 1; max / count_include_pad unused).
struct DepthwiseArgs {
    const void* x = nullptr;      // [n, h, w, c]
    const float* w = nullptr;     // [kh * kw, c], fp32
    const float* bias = nullptr;  // [c] or null
    const void* z = nullptr;      // [n, oh, ow, c] or null
    void* y = nullptr;            // [n, oh, ow, c]
    PoolDims p;
    DevAct act;
};
/// n * oh * ow * c < 2^31 (32-bit indices; the caller checks).
void launch_depthwise_nhwc(const DepthwiseArgs& a, LowType t, cudaStream_t s);
void launch_global_avg_pool_f32_nchw(const float* x, float* y, int64_t nc, int64_t hw, cudaStream_t s);


// fused_elementwise.cu: FusedElementwise's postfix program (see src/backends/reference/fused_elementwise.cc)
// Binary codes from kAdd to kGe, unary from kNeg to kToBool, then the ternary kWhere.
enum class EwCode : int { kInput, kConst, kAdd, kSub, kMul, kDiv, kPow, kMin, kMax, kAnd, kOr, kXor, kEq, kLt, kLe,
                          kGt, kGe, kNeg, kAbs, kSqrt, kExp, kLog, kReciprocal, kErf, kTanh, kSigmoid, kRelu,
                          kLeakyRelu, kClip, kNot, kToBool, kWhere };
/// How an input or the output of the program is stored (each value is a float in the kernel; bool is 0 / 1).
enum class EwIo : uint8_t { kF32, kF16, kBF16, kBool, kI32, kI64 };
constexpr int kMaxEwProgram = 64, kMaxEwInputs = 8, kMaxEwStack = 16;
struct EwInstr {
    int code = 0;
    int input = 0;
    float a = 0.f, b = 0.f;
};
struct EwProgram {
    int n = 0;
    EwInstr code[kMaxEwProgram];
    int num_inputs = 0, rank = 0;
    int64_t shape[kMaxDims] = {};
    int64_t strides[kMaxEwInputs][kMaxDims] = {};  // broadcast strides of each input over the output
    EwIo in_io[kMaxEwInputs] = {};  // storage of each input (fp16/bf16: values the executor keeps reduced)
    EwIo y_io = EwIo::kF32;         // storage of the output (kBool: uint8 0 / 1)
};
void launch_fused_elementwise(const EwProgram& p, const void* const* inputs, void* y, int64_t n, cudaStream_t s);
/// y (fp32) = cast(x) for x of kiln DataType `src_dtype` (float32, float16, int32, int64, bool, uint8, int8, f64).
void launch_cast_to_f32(const void* x, int src_dtype, float* y, int64_t n, cudaStream_t s);

}  // namespace kiln::cuda
