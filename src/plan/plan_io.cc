// Engine plan serialisation: PlanModel <-> bytes. See docs/PLAN_FORMAT.md for the full description.
//
// File layout, plan format version 1. All header integers are little-endian; offsets are from the file start.
//
//   offset  size  field
//   0       8     magic "KILNPLAN"
//   8       4     u32 header size (128), doubling as the byte-order marker (0x80000000 when read byte-swapped)
//   12      4     u32 plan format version (plan::kFormatVersion)
//   16      16    kiln version that wrote the plan, e.g. "0.1.0", NUL-padded
//   32      16    target backend, e.g. "cpu", NUL-padded
//   48      8     u64 total file size
//   56      8     u64 flatbuffer offset (128)
//   64      8     u64 flatbuffer size
//   72      8     u64 weights section offset (a multiple of 64)
//   80      8     u64 weights section size
//   88      8     u64 checksum: FNV-1a 64 of the whole file with these 8 bytes taken as zero
//   96      32    reserved, zero
//   128     F     flatbuffer (src/plan/plan_schema.fbs, root table Plan, file identifier "KLNP"): the graph
//                 zero padding up to a multiple of 64
//   W       S     weights section: weight i's raw bytes at W + Weight.offset, every offset a multiple of 64, so the
//                 weights stay 64-byte aligned when the file is memory-mapped; zero padding between weights
//
// A reader checks, in this order: magic, byte order, format version and kiln version (so a plan from another kiln
// reports the version, whatever else differs), file size, checksum, section bounds; then it verifies the
// flatbuffer with flatbuffers::Verifier and, while converting, every enum, index, dim, byte size and offset.
// No input byte string crashes the reader; what it allocates stays within a small multiple of the input size.
//
// The checksum is a plain FNV-1a 64 written here (no dependency); it detects accidental corruption, not tampering.
#include <algorithm>
#include <bit>
#include <cstring>
#include <type_traits>
#include <variant>

#include "kiln/version.h"
#include "src/common/check.h"
#include "src/plan/plan_model.h"
#include "src/plan/plan_schema_generated.h"

namespace kiln::plan {
namespace {

static_assert(std::endian::native == std::endian::little, "kiln plans store weights in little-endian byte order");
static_assert(static_cast<int>(DataType::kBool) == fb::DType_MAX, "fb::DType must mirror kiln::DataType");

constexpr uint8_t kMagic[8] = {'K', 'I', 'L', 'N', 'P', 'L', 'A', 'N'};
constexpr uint32_t kHeaderSize = 128;
constexpr size_t kFixedStringSize = 16;
constexpr uint64_t kWeightAlign = 64;
// Header field offsets.
constexpr size_t kHeaderSizeAt = 8;
constexpr size_t kFormatVersionAt = 12;
constexpr size_t kKilnVersionAt = 16;
constexpr size_t kBackendAt = 32;
constexpr size_t kFileSizeAt = 48;
constexpr size_t kFlatbufferOffsetAt = 56;
constexpr size_t kFlatbufferSizeAt = 64;
constexpr size_t kWeightsOffsetAt = 72;
constexpr size_t kWeightsSizeAt = 80;
constexpr size_t kChecksumAt = 88;
// Tensor attributes are stored inside the flatbuffer, which must stay below 2 GiB.
constexpr uint64_t kMaxInlineTensorBytes = uint64_t{1} << 30;

constexpr uint64_t kFnvOffsetBasis = 0xcbf29ce484222325ull;
constexpr uint64_t kFnvPrime = 0x100000001b3ull;

uint64_t fnv1a64(uint64_t h, const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
        h ^= p[i];
        h *= kFnvPrime;
    }
    return h;
}

/// FNV-1a 64 of `data[0, size)` with the checksum field read as zeros; size >= kHeaderSize.
uint64_t plan_checksum(const uint8_t* data, size_t size) {
    static constexpr uint8_t kZeros[8] = {};
    uint64_t h = fnv1a64(kFnvOffsetBasis, data, kChecksumAt);
    h = fnv1a64(h, kZeros, sizeof(kZeros));
    return fnv1a64(h, data + kChecksumAt + 8, size - kChecksumAt - 8);
}

void put_u32(uint8_t* p, uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void put_u64(uint8_t* p, uint64_t v) {
    for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get_u32(const uint8_t* p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
    return v;
}
uint64_t get_u64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
    return v;
}

std::string get_fixed_string(const uint8_t* p) {
    size_t n = 0;
    while (n < kFixedStringSize && p[n] != 0) ++n;
    return std::string(reinterpret_cast<const char*>(p), n);
}

/// For messages: a string from an untrusted file with control and non-ASCII bytes shown as '?'.
std::string printable(const std::string& s) {
    std::string out = s;
    for (char& c : out)
        if (c < 0x20 || c > 0x7e) c = '?';
    return out;
}

uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

/// Byte size of a dense tensor; false if a dim is negative or the element count / byte size overflows. The element
/// count is multiplied left to right like shape_numel(), so a shape accepted here never overflows there.
bool checked_bytes(const Shape& dims, DataType dtype, uint64_t* bytes) {
    int64_t n = 1;
    for (int64_t d : dims) {
        if (d < 0 || __builtin_mul_overflow(n, d, &n)) return false;
    }
    return !__builtin_mul_overflow(static_cast<uint64_t>(n), static_cast<uint64_t>(dtype_size(dtype)), bytes);
}

/// Consistency of a model's ids, dims and memory plan. Returns "" or the first problem found. Used by both sides,
/// so serialize() refuses to write a plan that deserialize() would refuse to read.
std::string model_problem(const PlanModel& m) {
    const int64_t num_values = static_cast<int64_t>(m.values.size());
    const int64_t num_weights = static_cast<int64_t>(m.weights.size());
    auto value_ok = [&](int32_t id) { return id >= 0 && id < num_values; };
    for (size_t i = 0; i < m.values.size(); ++i) {
        const PlanValue& v = m.values[i];
        if (v.weight < -1 || v.weight >= num_weights)
            return cat("value ", i, " ('", v.name, "') refers to weight ", v.weight, " of ", num_weights);
        for (const Dim& d : v.dims)
            if (d.value < -1) return cat("value ", i, " ('", v.name, "') has dimension ", d.value);
        if (v.layout != Layout::kPlain && (v.weight >= 0 || v.dims.size() != 4 || !is_static(v.dims)))
            return cat("value ", i, " ('", v.name, "') has layout ", layout_name(v.layout),
                       " but is not a 4-D activation of static shape");
        if (v.layout == Layout::kNChw16cBf16 && v.dtype != DataType::kFloat32)
            return cat("value ", i, " ('", v.name, "') has layout nChw16c_bf16 but is not float32");
    }
    for (size_t i = 0; i < m.nodes.size(); ++i) {
        const PlanNode& n = m.nodes[i];
        for (int32_t id : n.inputs)
            if (id != -1 && !value_ok(id))
                return cat("node ", i, " ('", n.name, "') has input value id ", id, " of ", num_values);
        for (int32_t id : n.outputs)
            if (!value_ok(id)) return cat("node ", i, " ('", n.name, "') has output value id ", id, " of ", num_values);
    }
    for (int32_t id : m.inputs)
        if (!value_ok(id)) return cat("graph input value id ", id, " is out of range (", num_values, " values)");
    for (int32_t id : m.outputs)
        if (!value_ok(id)) return cat("graph output value id ", id, " is out of range (", num_values, " values)");

    const MemoryPlan& mp = m.memory;
    if (!mp.offsets.empty() && static_cast<int64_t>(mp.offsets.size()) != num_values)
        return cat("the memory plan has ", mp.offsets.size(), " offsets for ", num_values, " values");
    if (mp.valid && static_cast<int64_t>(mp.offsets.size()) != num_values)
        return cat("the valid memory plan has ", mp.offsets.size(), " offsets for ", num_values, " values");
    for (size_t i = 0; i < mp.offsets.size(); ++i) {
        int64_t off = mp.offsets[i];
        if (off < -1) return cat("the memory plan has offset ", off, " for value ", i);
        if (!mp.valid || off < 0) continue;
        const PlanValue& v = m.values[i];
        uint64_t bytes = 0;  // a symbolic shape's size is unknown: only its start offset can be checked
        if (is_static(v.dims)) {
            Shape dims;
            for (const Dim& d : v.dims) dims.push_back(d.value);
            if (is_blocked(v.layout) && dims.size() == 4) dims[1] = padded_channels(dims[1]);
            if (!checked_bytes(dims, v.dtype, &bytes)) return cat("value ", i, " ('", v.name, "') is too large");
            if (v.layout == Layout::kNChw16cBf16) bytes /= 2;  // bf16 elements of a float32 value
        }
        if (static_cast<uint64_t>(off) > mp.arena_bytes || bytes > mp.arena_bytes - static_cast<uint64_t>(off))
            return cat("value ", i, " ('", v.name, "') at arena offset ", off, " (", bytes, " bytes) does not fit the ",
                       mp.arena_bytes, "-byte arena");
    }
    return {};
}

// ============================================================================================== writing

using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;

[[noreturn]] void write_error(const std::string& what) {
    KILN_FAIL(kInvalidArgument, "cannot serialize the plan: ", what);
}

uint64_t checked_tensor_bytes(const Tensor& t, const std::string& what) {
    uint64_t bytes = 0;
    if (!checked_bytes(t.shape(), t.dtype(), &bytes))
        write_error(cat(what, " has invalid shape ", shape_str(t.shape())));
    if (bytes != 0 && t.raw() == nullptr) write_error(cat(what, " has no data"));
    return bytes;
}

fb::DType to_fb(DataType t) { return static_cast<fb::DType>(t); }

Offset<fb::TensorData> write_tensor(FlatBufferBuilder& fbb, const Tensor& t, const std::string& what,
                                    uint64_t* inline_bytes) {
    uint64_t bytes = checked_tensor_bytes(t, what);
    *inline_bytes += bytes;
    if (*inline_bytes > kMaxInlineTensorBytes)
        write_error(cat("tensor attributes exceed ", kMaxInlineTensorBytes, " bytes in total (at ", what,
                        "); store large constants as weights"));
    auto dims = fbb.CreateVector(t.shape());
    static const uint8_t kNoData = 0;
    const uint8_t* data = bytes ? static_cast<const uint8_t*>(t.raw()) : &kNoData;
    auto payload = fbb.CreateVector(data, static_cast<size_t>(bytes));
    return fb::CreateTensorData(fbb, to_fb(t.dtype()), dims, payload);
}

Offset<fb::Attribute> write_attribute(FlatBufferBuilder& fbb, const std::string& name, const Attribute& attr,
                                      const std::string& where, uint64_t* inline_bytes) {
    Offset<void> value;
    fb::AttrValue type = fb::AttrValue_NONE;
    std::visit(
        [&](const auto& v) {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, int64_t>) {
                value = fb::CreateIntAttr(fbb, v).Union();
                type = fb::AttrValue_IntAttr;
            } else if constexpr (std::is_same_v<T, float>) {
                value = fb::CreateFloatAttr(fbb, v).Union();
                type = fb::AttrValue_FloatAttr;
            } else if constexpr (std::is_same_v<T, std::string>) {
                value = fb::CreateStringAttr(fbb, fbb.CreateString(v)).Union();
                type = fb::AttrValue_StringAttr;
            } else if constexpr (std::is_same_v<T, std::vector<int64_t>>) {
                value = fb::CreateIntsAttr(fbb, fbb.CreateVector(v)).Union();
                type = fb::AttrValue_IntsAttr;
            } else if constexpr (std::is_same_v<T, std::vector<float>>) {
                value = fb::CreateFloatsAttr(fbb, fbb.CreateVector(v)).Union();
                type = fb::AttrValue_FloatsAttr;
            } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
                value = fb::CreateStringsAttr(fbb, fbb.CreateVectorOfStrings(v)).Union();
                type = fb::AttrValue_StringsAttr;
            } else {
                static_assert(std::is_same_v<T, Tensor>, "new attribute kind: extend plan_schema.fbs");
                auto t = write_tensor(fbb, v, cat(where, " attribute '", name, "'"), inline_bytes);
                value = fb::CreateTensorAttr(fbb, t).Union();
                type = fb::AttrValue_TensorAttr;
            }
        },
        attr);
    static_assert(std::variant_size_v<Attribute> == fb::AttrValue_MAX, "fb::AttrValue must mirror kiln::Attribute");
    auto fname = fbb.CreateString(name);
    return fb::CreateAttribute(fbb, fname, type, value);
}

Offset<fb::Node> write_node(FlatBufferBuilder& fbb, const PlanNode& n, size_t index, uint64_t* inline_bytes) {
    std::string where = cat("node ", index, " ('", n.name, "')");
    std::vector<Offset<fb::Attribute>> attrs;
    for (const auto& [name, attr] : n.attrs.items())
        attrs.push_back(write_attribute(fbb, name, attr, where, inline_bytes));
    auto fattrs = fbb.CreateVector(attrs);
    auto name = fbb.CreateString(n.name);
    auto op_type = fbb.CreateString(n.op_type);
    auto domain = fbb.CreateString(n.domain);
    auto inputs = fbb.CreateVector(n.inputs);
    auto outputs = fbb.CreateVector(n.outputs);
    auto fused_from = fbb.CreateVectorOfStrings(n.fused_from);
    auto backend = fbb.CreateString(n.backend);
    return fb::CreateNode(fbb, name, op_type, domain, fattrs, inputs, outputs, fused_from, backend);
}

Offset<fb::Value> write_value(FlatBufferBuilder& fbb, const PlanValue& v) {
    std::vector<Offset<fb::Dim>> dims;
    for (const Dim& d : v.dims) {
        auto symbol = fbb.CreateString(d.symbol);
        dims.push_back(fb::CreateDim(fbb, d.value, symbol));
    }
    auto fdims = fbb.CreateVector(dims);
    auto name = fbb.CreateString(v.name);
    return fb::CreateValue(fbb, name, to_fb(v.dtype), fdims, v.weight, static_cast<uint8_t>(v.layout));
}

void put_fixed_string(uint8_t* p, const std::string& s, const char* what) {
    if (s.size() > kFixedStringSize || s.find('\0') != std::string::npos)
        write_error(cat(what, " '", printable(s), "' must be at most ", kFixedStringSize, " bytes without NULs"));
    std::memcpy(p, s.data(), s.size());
}

// ============================================================================================== reading

[[noreturn]] void corrupt(const std::string& source, const std::string& what) {
    KILN_FAIL(kInvalidPlan, "plan '", source, "' is corrupted: ", what, "; rebuild it with `kiln build`");
}

[[noreturn]] void truncated(const std::string& source, uint64_t expected, size_t found) {
    KILN_FAIL(kInvalidPlan, "plan '", source, "' is truncated: expected ", expected, " bytes, found ", found,
              "; rebuild it with `kiln build`");
}

/// Converts a verified flatbuffer into a PlanModel, checking what the verifier cannot: enum ranges, dims, byte
/// sizes and weight offsets. Copies are charged against a byte budget equal to the flatbuffer size, which a
/// well-formed (tree-shaped) buffer never exceeds, so a hostile buffer that shares one table many times cannot blow
/// up memory.
class Reader {
public:
    Reader(const std::string& source, uint64_t fb_size, const uint8_t* weights, uint64_t weights_size)
        : source_(source),
          budget_(fb_size),
          weights_(weights),
          weights_size_(weights_size),
          weight_budget_(weights_size) {}

    void read(const fb::Plan& p, PlanModel* m) {
        charge(4);
        m->producer = str(p.producer());
        if (p.metadata()) {
            charge(4 + 4 * uint64_t{p.metadata()->size()});
            for (const fb::KeyValue* kv : *p.metadata()) {
                charge(4);
                std::string key = str(kv->key());
                if (m->metadata.count(key)) fail(cat("metadata key '", printable(key), "' appears twice"));
                m->metadata[key] = str(kv->value());
            }
        }
        if (p.weights()) {
            charge(4 + 4 * uint64_t{p.weights()->size()});
            for (const fb::Weight* w : *p.weights()) m->weights.push_back(read_weight(*w, m->weights.size()));
        }
        if (p.values()) {
            charge(4 + 4 * uint64_t{p.values()->size()});
            for (const fb::Value* v : *p.values()) m->values.push_back(read_value(*v, m->values.size()));
        }
        if (p.nodes()) {
            charge(4 + 4 * uint64_t{p.nodes()->size()});
            for (const fb::Node* n : *p.nodes()) m->nodes.push_back(read_node(*n, m->nodes.size()));
        }
        m->inputs = scalars(p.inputs());
        m->outputs = scalars(p.outputs());
        if (const fb::MemoryPlan* mp = p.memory()) {
            charge(4);
            m->memory.valid = mp->valid();
            m->memory.arena_bytes = mp->arena_bytes();
            m->memory.naive_bytes = mp->naive_bytes();
            m->memory.lower_bound_bytes = mp->lower_bound_bytes();
            m->memory.offsets = scalars(mp->offsets());
        }
    }

private:
    [[noreturn]] void fail(const std::string& what) const { corrupt(source_, what); }

    void charge(uint64_t n) {
        if (n > budget_) fail("the graph section refers to the same data more often than it holds");
        budget_ -= n;
    }

    std::string str(const flatbuffers::String* s) {
        if (!s) return {};
        charge(4 + uint64_t{s->size()});
        return std::string(s->c_str(), s->size());
    }

    /// Copies a vector of scalars. flatbuffers 2.0.8's verifier checks a vector's 4-byte length alignment but not
    /// its elements' (an int64 vector may sit at 4 mod 8), so the elements are memcpy'd, never read in place.
    template <typename T>
    std::vector<T> scalars(const flatbuffers::Vector<T>* v) {
        static_assert(std::is_arithmetic_v<T>);
        std::vector<T> out;
        if (!v) return out;
        charge(4 + uint64_t{v->size()} * sizeof(T));
        out.resize(v->size());
        if (!out.empty()) std::memcpy(out.data(), v->Data(), out.size() * sizeof(T));
        return out;
    }

    std::vector<std::string> strings(const flatbuffers::Vector<Offset<flatbuffers::String>>* v) {
        std::vector<std::string> out;
        if (!v) return out;
        charge(4 + 4 * uint64_t{v->size()});
        out.reserve(v->size());
        for (const flatbuffers::String* s : *v) out.push_back(str(s));
        return out;
    }

    DataType dtype(fb::DType t, const std::string& what) const {
        if (t > fb::DType_MAX) fail(cat(what, " has unknown data type code ", static_cast<int>(t)));
        return static_cast<DataType>(t);
    }

    /// Dims and byte size of a tensor; fails on negative dims or overflow.
    uint64_t tensor_shape(const flatbuffers::Vector<int64_t>* fdims, DataType dt, const std::string& what,
                          Shape* dims) {
        *dims = scalars(fdims);
        uint64_t bytes = 0;
        if (!checked_bytes(*dims, dt, &bytes)) fail(cat(what, " has invalid shape [", join(*dims, ", "), "]"));
        return bytes;
    }

    Tensor read_tensor(const fb::TensorData* t, const std::string& what) {
        if (!t) fail(cat(what, " has no tensor"));
        charge(4);
        DataType dt = dtype(t->dtype(), what);
        Shape dims;
        uint64_t bytes = tensor_shape(t->dims(), dt, what, &dims);
        uint64_t have = t->data() ? t->data()->size() : 0;
        if (have != bytes)
            fail(cat(what, " holds ", have, " bytes but its ", dtype_name(dt), " [", join(dims, ", "), "] shape needs ",
                     bytes));
        charge(4 + bytes);
        Tensor out(dt, dims);
        if (bytes) std::memcpy(out.raw(), t->data()->data(), bytes);
        return out;
    }

    Tensor read_weight(const fb::Weight& w, size_t index) {
        charge(4);
        std::string what = cat("weight ", index);
        DataType dt = dtype(w.dtype(), what);
        Shape dims;
        uint64_t bytes = tensor_shape(w.dims(), dt, what, &dims);
        uint64_t offset = w.offset();
        if (w.byte_size() != bytes)
            fail(cat(what, " records ", w.byte_size(), " bytes but its ", dtype_name(dt), " [", join(dims, ", "),
                     "] shape needs ", bytes));
        if (offset % kWeightAlign != 0) fail(cat(what, " is at offset ", offset, ", not a multiple of ", kWeightAlign));
        if (offset > weights_size_ || bytes > weights_size_ - offset)
            fail(cat(what, " (", bytes, " bytes at offset ", offset, ") lies outside the ", weights_size_,
                     "-byte weights section"));
        if (bytes > weight_budget_) fail("weights overlap in the weights section");
        weight_budget_ -= bytes;
        Tensor out(dt, dims);
        if (bytes) std::memcpy(out.raw(), weights_ + offset, bytes);
        return out;
    }

    PlanValue read_value(const fb::Value& v, size_t index) {
        charge(4);
        PlanValue out;
        out.name = str(v.name());
        out.dtype = dtype(v.dtype(), cat("value ", index));
        out.weight = v.weight();
        if (v.layout() > static_cast<uint8_t>(Layout::kNChw16cBf16))
            fail(cat("value ", index, " ('", out.name, "') has unknown layout ", int{v.layout()}));
        out.layout = static_cast<Layout>(v.layout());
        if (v.dims()) {
            charge(4 + 4 * uint64_t{v.dims()->size()});
            for (const fb::Dim* d : *v.dims()) {
                charge(4);
                Dim dim(d->value());
                dim.symbol = str(d->symbol());
                out.dims.push_back(std::move(dim));
            }
        }
        return out;
    }

    Attribute read_attribute(const fb::Attribute& a, const std::string& what) {
        switch (a.value_type()) {
            case fb::AttrValue_IntAttr: return a.value_as_IntAttr()->value();
            case fb::AttrValue_FloatAttr: return a.value_as_FloatAttr()->value();
            case fb::AttrValue_StringAttr: return str(a.value_as_StringAttr()->value());
            case fb::AttrValue_IntsAttr: return scalars(a.value_as_IntsAttr()->values());
            case fb::AttrValue_FloatsAttr: return scalars(a.value_as_FloatsAttr()->values());
            case fb::AttrValue_StringsAttr: return strings(a.value_as_StringsAttr()->values());
            case fb::AttrValue_TensorAttr: return read_tensor(a.value_as_TensorAttr()->value(), what);
            default: break;
        }
        fail(cat(what, " has unknown attribute kind ", static_cast<int>(a.value_type())));
    }

    PlanNode read_node(const fb::Node& n, size_t index) {
        charge(4);
        PlanNode out;
        out.name = str(n.name());
        out.op_type = str(n.op_type());
        out.domain = str(n.domain());
        out.inputs = scalars(n.inputs());
        out.outputs = scalars(n.outputs());
        out.fused_from = strings(n.fused_from());
        out.backend = str(n.backend());
        if (n.attrs()) {
            charge(4 + 4 * uint64_t{n.attrs()->size()});
            for (const fb::Attribute* a : *n.attrs()) {
                charge(8);  // the attribute table and its value table
                std::string name = str(a->name());
                std::string what =
                    cat("node ", index, " ('", printable(out.name), "') attribute '", printable(name), "'");
                if (out.attrs.has(name)) fail(cat(what, " appears twice"));
                // The verifier accepts a union value of an unknown type or a missing value; read_attribute rejects
                // the first, this the second.
                if (a->value_type() != fb::AttrValue_NONE && a->value() == nullptr) fail(cat(what, " has no value"));
                out.attrs.set(name, read_attribute(*a, what));
            }
        }
        return out;
    }

    const std::string& source_;
    uint64_t budget_;
    const uint8_t* weights_;
    uint64_t weights_size_;
    uint64_t weight_budget_;
};

/// Checks the header of `data` in the documented order and returns the section bounds.
struct Sections {
    uint64_t fb_offset, fb_size, weights_offset, weights_size;
};

Sections check_header(const uint8_t* data, size_t size, const std::string& source, PlanModel* m) {
    if (size < sizeof(kMagic) || std::memcmp(data, kMagic, sizeof(kMagic)) != 0)
        KILN_FAIL(kInvalidPlan, "file '", source, "' is not a kiln plan (bad magic)");
    if (size < kFormatVersionAt + 4) truncated(source, kHeaderSize, size);
    const uint32_t header_size = get_u32(data + kHeaderSizeAt);
    if (header_size != kHeaderSize && __builtin_bswap32(header_size) == kHeaderSize)
        KILN_FAIL(kInvalidPlan, "plan '", source,
                  "' was written with the other byte order; rebuild it on this machine");

    const uint32_t format = get_u32(data + kFormatVersionAt);
    const std::string kiln_version =
        size >= kKilnVersionAt + kFixedStringSize ? printable(get_fixed_string(data + kKilnVersionAt)) : "(unknown)";
    if (format != kFormatVersion || (size >= kKilnVersionAt + kFixedStringSize && kiln_version != kVersionString))
        KILN_FAIL(kVersionMismatch, "plan '", source, "' was built by kiln ", kiln_version, " (plan format ", format,
                  "), but this is kiln ", kVersionString, " (plan format ", kFormatVersion,
                  "); rebuild the plan with this kiln (`kiln build MODEL -o PLAN`)");
    if (header_size != kHeaderSize)
        corrupt(source, cat("the header size is ", header_size, " instead of ", kHeaderSize));
    if (size < kHeaderSize)
        truncated(source, size >= kFileSizeAt + 8 ? get_u64(data + kFileSizeAt) : kHeaderSize, size);

    const uint64_t file_size = get_u64(data + kFileSizeAt);
    if (file_size > size) truncated(source, file_size, size);
    if (file_size < size)
        KILN_FAIL(kInvalidPlan, "plan '", source, "' has ", size - file_size, " bytes of trailing data: expected ",
                  file_size, " bytes, found ", size, "; rebuild it with `kiln build`");
    if (plan_checksum(data, size) != get_u64(data + kChecksumAt))
        KILN_FAIL(kInvalidPlan, "plan '", source, "' is corrupted (checksum mismatch); rebuild it with `kiln build`");

    m->format_version = format;
    m->kiln_version = get_fixed_string(data + kKilnVersionAt);
    m->target_backend = get_fixed_string(data + kBackendAt);
    Sections s{get_u64(data + kFlatbufferOffsetAt), get_u64(data + kFlatbufferSizeAt), get_u64(data + kWeightsOffsetAt),
               get_u64(data + kWeightsSizeAt)};
    // Section order: header, flatbuffer, weights; each inside the file.
    if (s.fb_offset < kHeaderSize || s.fb_offset % 8 != 0 || s.fb_offset > size || s.fb_size > size - s.fb_offset ||
        s.fb_size >= FLATBUFFERS_MAX_BUFFER_SIZE)
        corrupt(source, cat("the graph section (", s.fb_size, " bytes at ", s.fb_offset, ") lies outside the file"));
    if (s.weights_offset % kWeightAlign != 0 || s.weights_offset < s.fb_offset + s.fb_size || s.weights_offset > size ||
        s.weights_size > size - s.weights_offset)
        corrupt(source, cat("the weights section (", s.weights_size, " bytes at ", s.weights_offset,
                            ") lies outside the file or overlaps the graph"));
    return s;
}

}  // namespace

std::vector<uint8_t> serialize(const PlanModel& model) {
    if (std::string problem = model_problem(model); !problem.empty()) write_error(problem);

    // Weights section layout: every weight at a multiple of 64 from its start.
    std::vector<uint64_t> weight_offsets;
    uint64_t weights_size = 0;
    for (size_t i = 0; i < model.weights.size(); ++i) {
        uint64_t bytes = checked_tensor_bytes(model.weights[i], cat("weight ", i));
        weights_size = align_up(weights_size, kWeightAlign);
        weight_offsets.push_back(weights_size);
        weights_size += bytes;
    }

    FlatBufferBuilder fbb(64 * 1024);
    fbb.ForceDefaults(true);  // keeps e.g. -0.0f attributes exact and every field explicit
    uint64_t inline_bytes = 0;
    std::vector<Offset<fb::Node>> nodes;
    for (size_t i = 0; i < model.nodes.size(); ++i) nodes.push_back(write_node(fbb, model.nodes[i], i, &inline_bytes));
    std::vector<Offset<fb::Value>> values;
    for (const PlanValue& v : model.values) values.push_back(write_value(fbb, v));
    std::vector<Offset<fb::Weight>> weights;
    for (size_t i = 0; i < model.weights.size(); ++i) {
        const Tensor& w = model.weights[i];
        auto dims = fbb.CreateVector(w.shape());
        weights.push_back(fb::CreateWeight(fbb, to_fb(w.dtype()), dims, weight_offsets[i], w.bytes()));
    }
    std::vector<Offset<fb::KeyValue>> metadata;
    for (const auto& [key, value] : model.metadata) {
        auto k = fbb.CreateString(key);
        auto v = fbb.CreateString(value);
        metadata.push_back(fb::CreateKeyValue(fbb, k, v));
    }
    auto memory = fb::CreateMemoryPlan(fbb, model.memory.valid, model.memory.arena_bytes, model.memory.naive_bytes,
                                       model.memory.lower_bound_bytes, fbb.CreateVector(model.memory.offsets));
    auto producer = fbb.CreateString(model.producer);
    auto fmetadata = fbb.CreateVector(metadata);
    auto fvalues = fbb.CreateVector(values);
    auto fnodes = fbb.CreateVector(nodes);
    auto inputs = fbb.CreateVector(model.inputs);
    auto outputs = fbb.CreateVector(model.outputs);
    auto fweights = fbb.CreateVector(weights);
    auto root = fb::CreatePlan(fbb, producer, fmetadata, fvalues, fnodes, inputs, outputs, fweights, memory);
    fb::FinishPlanBuffer(fbb, root);

    const uint64_t fb_offset = kHeaderSize;
    const uint64_t fb_size = fbb.GetSize();
    const uint64_t weights_offset = align_up(fb_offset + fb_size, kWeightAlign);
    const uint64_t file_size = weights_offset + weights_size;

    std::vector<uint8_t> out(file_size, 0);
    uint8_t* p = out.data();
    std::memcpy(p, kMagic, sizeof(kMagic));
    put_u32(p + kHeaderSizeAt, kHeaderSize);
    put_u32(p + kFormatVersionAt, kFormatVersion);
    put_fixed_string(p + kKilnVersionAt, model.kiln_version.empty() ? kVersionString : model.kiln_version,
                     "kiln version");
    put_fixed_string(p + kBackendAt, model.target_backend, "target backend");
    put_u64(p + kFileSizeAt, file_size);
    put_u64(p + kFlatbufferOffsetAt, fb_offset);
    put_u64(p + kFlatbufferSizeAt, fb_size);
    put_u64(p + kWeightsOffsetAt, weights_offset);
    put_u64(p + kWeightsSizeAt, weights_size);
    std::memcpy(p + fb_offset, fbb.GetBufferPointer(), fb_size);
    for (size_t i = 0; i < model.weights.size(); ++i) {
        const Tensor& w = model.weights[i];
        if (w.bytes()) std::memcpy(p + weights_offset + weight_offsets[i], w.raw(), w.bytes());
    }
    put_u64(p + kChecksumAt, plan_checksum(p, out.size()));
    return out;
}

PlanModel deserialize(const uint8_t* data, size_t size, const std::string& source) {
    if (data == nullptr) size = 0;
    PlanModel m;
    const Sections s = check_header(data, size, source, &m);

    // The flatbuffer accessors read scalars in place, so they need the buffer 8-byte aligned.
    const uint8_t* fb_data = data + s.fb_offset;
    std::vector<uint64_t> aligned;
    if (reinterpret_cast<uintptr_t>(fb_data) % alignof(uint64_t) != 0) {
        aligned.resize((s.fb_size + 7) / 8);
        std::memcpy(aligned.data(), fb_data, s.fb_size);
        fb_data = reinterpret_cast<const uint8_t*>(aligned.data());
    }
    flatbuffers::Verifier::Options opts;
    opts.max_tables = static_cast<flatbuffers::uoffset_t>(std::max<uint64_t>(1000000, s.fb_size / 4));
    flatbuffers::Verifier verifier(fb_data, s.fb_size, opts);
    if (!fb::VerifyPlanBuffer(verifier)) corrupt(source, "the graph section fails flatbuffer verification");

    Reader(source, s.fb_size, data + s.weights_offset, s.weights_size).read(*fb::GetPlan(fb_data), &m);
    if (std::string problem = model_problem(m); !problem.empty()) corrupt(source, problem);
    return m;
}

}  // namespace kiln::plan
