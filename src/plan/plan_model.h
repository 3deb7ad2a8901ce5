#pragma once
// The engine plan in memory: a topologically ordered list of nodes over numbered values, constant weights, and
// the build fingerprint. This is all the runtime needs; it does not depend on the IR or on protobuf.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "kiln/attribute.h"
#include "kiln/tensor.h"
#include "src/common/layout.h"

namespace kiln::plan {

/// Plan format version. History:
///   1 — first format: values, nodes, attributes, weights section, memory plan, FNV-1a-64 checksum.
///   2 — Value.layout: the memory layout of each activation (plain, or nChw16c between cpu convolutions); the
///       memory plan's sizes include the channel padding of blocked values.
///   3 — Attention nodes may use the head-packed layout (attributes `num_heads`, `head_dim`, `v_head_dim`,
///       `qkv_offsets`): a format-2 runtime would read such a node in the classic layout.
///   4 — Value.layout 2, nChw16c_bf16: a blocked activation stored as bf16 between bf16 cpu layers (--bf16); the
///       memory plan sizes it at 2 bytes per element.
///   5 — Attention nodes may use the seq-first head-packed layout (attribute `seq_first`): a format-4 runtime would
///       read such a node's rows as batch-first.
inline constexpr uint32_t kFormatVersion = 5;

struct PlanValue {
    std::string name;
    DataType dtype = DataType::kFloat32;
    SymShape dims;
    int32_t weight = -1;  ///< index into PlanModel::weights when the value is a constant
    Layout layout = Layout::kPlain;  ///< how the bytes of an activation are laid out (src/common/layout.h)
};

struct PlanNode {
    std::string name;
    std::string op_type;
    std::string domain;  ///< "" for ONNX ops, "kiln" for fused ops
    AttributeMap attrs;
    std::vector<int32_t> inputs;  ///< value ids; -1 for an omitted optional input
    std::vector<int32_t> outputs;
    std::vector<std::string> fused_from;  ///< names of the original ONNX nodes folded into this one
    std::string backend;                  ///< which backend runs it
};

/// Offsets of activations in one arena, valid for the shapes the plan was built for (static shapes only).
struct MemoryPlan {
    bool valid = false;
    uint64_t arena_bytes = 0;
    uint64_t naive_bytes = 0;
    uint64_t lower_bound_bytes = 0;
    std::vector<int64_t> offsets;  ///< per value id; -1 for values not in the arena (inputs, weights)
};

struct PlanModel {
    uint32_t format_version = kFormatVersion;
    std::string kiln_version;
    std::string target_backend = "cpu";
    std::string producer;  ///< e.g. "pytorch 2.11" from the ONNX model
    std::map<std::string, std::string> metadata;
    std::vector<PlanValue> values;
    std::vector<PlanNode> nodes;
    std::vector<int32_t> inputs;
    std::vector<int32_t> outputs;
    std::vector<Tensor> weights;
    MemoryPlan memory;
};

/// Serialises to bytes: a fixed header (magic "KILNPLAN", format version, kiln version, backend), a flatbuffer
/// with the graph, then 64-byte-aligned weight sections, and a checksum over everything.
std::vector<uint8_t> serialize(const PlanModel& model);
/// Parses bytes; `source` names the file in errors. Throws kInvalidPlan (corrupted/truncated), kVersionMismatch
/// (other kiln or format version: rebuild the plan with this kiln), never crashes on bad bytes.
PlanModel deserialize(const uint8_t* data, size_t size, const std::string& source);

/// Writes atomically (temporary file + rename): a failure leaves no partial file.
void write_file_atomic(const std::string& path, const std::vector<uint8_t>& bytes);
std::vector<uint8_t> read_file(const std::string& path);

}  // namespace kiln::plan
