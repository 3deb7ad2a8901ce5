// Plan format: round trips, the on-disk layout, and errors (never a crash) on damaged or foreign bytes.
#include <dirent.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <random>

#include "kiln/status.h"
#include "kiln/version.h"
#include "src/plan/plan_model.h"

namespace kiln::plan {
namespace {

// The header layout from docs/PLAN_FORMAT.md, restated here so a change to it fails these tests.
constexpr size_t kHeaderSize = 128;
constexpr size_t kFormatVersionAt = 12;
constexpr size_t kKilnVersionAt = 16;
constexpr size_t kBackendAt = 32;
constexpr size_t kFileSizeAt = 48;
constexpr size_t kFlatbufferOffsetAt = 56;
constexpr size_t kFlatbufferSizeAt = 64;
constexpr size_t kWeightsOffsetAt = 72;
constexpr size_t kWeightsSizeAt = 80;
constexpr size_t kChecksumAt = 88;

uint64_t get_u64(const std::vector<uint8_t>& b, size_t at) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(b[at + i]) << (8 * i);
    return v;
}
void put_u64(std::vector<uint8_t>& b, size_t at, uint64_t v) {
    for (int i = 0; i < 8; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t get_u32(const std::vector<uint8_t>& b, size_t at) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(b[at + i]) << (8 * i);
    return v;
}
void put_u32(std::vector<uint8_t>& b, size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) b[at + i] = static_cast<uint8_t>(v >> (8 * i));
}

/// FNV-1a 64 of the file with the checksum field taken as zero (an independent restatement of the format).
uint64_t checksum_of(const std::vector<uint8_t>& b) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < b.size(); ++i) {
        h ^= (i >= kChecksumAt && i < kChecksumAt + 8) ? 0 : b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
void fix_checksum(std::vector<uint8_t>& b) { put_u64(b, kChecksumAt, checksum_of(b)); }

/// A tensor whose bytes follow a seeded pattern, so each weight is distinct and findable in the file.
Tensor patterned(DataType dtype, Shape shape, uint32_t seed) {
    Tensor t(dtype, std::move(shape));
    std::mt19937 rng(seed);
    auto* p = static_cast<uint8_t*>(t.raw());
    for (size_t i = 0; i < t.bytes(); ++i) p[i] = static_cast<uint8_t>(rng());
    if (dtype == DataType::kBool)
        for (size_t i = 0; i < t.bytes(); ++i) p[i] &= 1;
    return t;
}

PlanValue value(std::string name, DataType dtype, SymShape dims, int32_t weight = -1) {
    PlanValue v;
    v.name = std::move(name);
    v.dtype = dtype;
    v.dims = std::move(dims);
    v.weight = weight;
    return v;
}

/// A model using every field: all attribute kinds, symbolic dims, weights of several dtypes, a memory plan.
PlanModel make_model() {
    PlanModel m;
    m.target_backend = "cpu";
    m.producer = "pytorch 2.11";
    m.metadata = {{"author", "kiln tests"}, {"empty", ""}, {"unicode", "h\xc3\xa9llo"}};
    m.weights = {
        patterned(DataType::kFloat32, {2, 3}, 1),  patterned(DataType::kFloat16, {5}, 2),
        patterned(DataType::kInt8, {7}, 3),        patterned(DataType::kInt64, {3}, 4),
        patterned(DataType::kBFloat16, {1, 1}, 5), patterned(DataType::kFloat64, {2, 2}, 6),
        patterned(DataType::kBool, {3}, 7),        patterned(DataType::kUInt8, {0, 4}, 8),
        patterned(DataType::kInt32, {}, 9),
    };
    m.values = {
        value("x", DataType::kFloat32, {Dim("batch"), 3, Dim(), Dim("seq")}),
        value("w0", DataType::kFloat32, {2, 3}, 0),
        value("w1", DataType::kFloat16, {5}, 1),
        value("w2", DataType::kInt8, {7}, 2),
        value("w3", DataType::kInt64, {3}, 3),
        value("w4", DataType::kBFloat16, {1, 1}, 4),
        value("w5", DataType::kFloat64, {2, 2}, 5),
        value("w6", DataType::kBool, {3}, 6),
        value("w7", DataType::kUInt8, {0, 4}, 7),
        value("w8", DataType::kInt32, {}, 8),
        value("t0", DataType::kFloat32, {1, 3, 4, 4}),
        value("y", DataType::kFloat16, {1, 48}),
    };
    PlanNode conv;
    conv.name = "/conv/Conv";
    conv.op_type = "Conv";
    conv.inputs = {0, 1, -1};
    conv.outputs = {10};
    conv.backend = "cpu";
    conv.attrs.set("group", int64_t{-7});
    conv.attrs.set("big", std::numeric_limits<int64_t>::min());
    conv.attrs.set("alpha", 0.125f);
    conv.attrs.set("auto_pad", std::string("SAME_UPPER"));
    conv.attrs.set("empty_string", std::string());
    conv.attrs.set("pads", std::vector<int64_t>{0, 1, 2, 3});
    conv.attrs.set("no_ints", std::vector<int64_t>{});
    conv.attrs.set("scales", std::vector<float>{1.5f, -2.f, 1e-30f});
    conv.attrs.set("modes", std::vector<std::string>{"a", "", "long string with spaces"});
    conv.attrs.set("value", patterned(DataType::kInt64, {2, 2}, 10));
    conv.attrs.set("empty_tensor", Tensor(DataType::kFloat32, {0}));
    PlanNode fused;
    fused.name = "fused_gelu";
    fused.op_type = "Gelu";
    fused.domain = "kiln";
    fused.inputs = {10, 2, 3, 4, 5, 6, 7, 8, 9};
    fused.outputs = {11};
    fused.fused_from = {"/act/Div", "/act/Erf", "/act/Add", "/act/Mul"};
    fused.backend = "reference";
    m.nodes = {conv, fused, PlanNode{}};
    m.nodes[2].name = "noop";
    m.inputs = {0};
    m.outputs = {11, 10};
    m.memory.valid = true;
    m.memory.arena_bytes = 512;
    m.memory.naive_bytes = 1024;
    m.memory.lower_bound_bytes = 192;
    m.memory.offsets = std::vector<int64_t>(m.values.size(), -1);
    m.memory.offsets[10] = 0;
    m.memory.offsets[11] = 256;
    return m;
}

void expect_tensor_eq(const Tensor& a, const Tensor& b, const std::string& what) {
    SCOPED_TRACE(what);
    EXPECT_EQ(a.dtype(), b.dtype());
    EXPECT_EQ(a.shape(), b.shape());
    ASSERT_EQ(a.bytes(), b.bytes());
    if (a.bytes()) {
        EXPECT_EQ(std::memcmp(a.raw(), b.raw(), a.bytes()), 0);
    }
}

void expect_model_eq(const PlanModel& a, const PlanModel& b) {
    EXPECT_EQ(a.format_version, b.format_version);
    EXPECT_EQ(a.target_backend, b.target_backend);
    EXPECT_EQ(a.producer, b.producer);
    EXPECT_EQ(a.metadata, b.metadata);
    ASSERT_EQ(a.values.size(), b.values.size());
    for (size_t i = 0; i < a.values.size(); ++i) {
        SCOPED_TRACE("value " + std::to_string(i));
        EXPECT_EQ(a.values[i].name, b.values[i].name);
        EXPECT_EQ(a.values[i].dtype, b.values[i].dtype);
        EXPECT_EQ(a.values[i].dims, b.values[i].dims);
        EXPECT_EQ(a.values[i].weight, b.values[i].weight);
        EXPECT_EQ(a.values[i].layout, b.values[i].layout);
    }
    ASSERT_EQ(a.nodes.size(), b.nodes.size());
    for (size_t i = 0; i < a.nodes.size(); ++i) {
        SCOPED_TRACE("node " + std::to_string(i));
        EXPECT_EQ(a.nodes[i].name, b.nodes[i].name);
        EXPECT_EQ(a.nodes[i].op_type, b.nodes[i].op_type);
        EXPECT_EQ(a.nodes[i].domain, b.nodes[i].domain);
        EXPECT_TRUE(a.nodes[i].attrs == b.nodes[i].attrs);
        EXPECT_EQ(a.nodes[i].inputs, b.nodes[i].inputs);
        EXPECT_EQ(a.nodes[i].outputs, b.nodes[i].outputs);
        EXPECT_EQ(a.nodes[i].fused_from, b.nodes[i].fused_from);
        EXPECT_EQ(a.nodes[i].backend, b.nodes[i].backend);
    }
    EXPECT_EQ(a.inputs, b.inputs);
    EXPECT_EQ(a.outputs, b.outputs);
    ASSERT_EQ(a.weights.size(), b.weights.size());
    for (size_t i = 0; i < a.weights.size(); ++i)
        expect_tensor_eq(a.weights[i], b.weights[i], "weight " + std::to_string(i));
    EXPECT_EQ(a.memory.valid, b.memory.valid);
    EXPECT_EQ(a.memory.arena_bytes, b.memory.arena_bytes);
    EXPECT_EQ(a.memory.naive_bytes, b.memory.naive_bytes);
    EXPECT_EQ(a.memory.lower_bound_bytes, b.memory.lower_bound_bytes);
    EXPECT_EQ(a.memory.offsets, b.memory.offsets);
}

/// Runs `fn`, expecting a kiln::Error; returns it (code kInternal and "no error" when none was thrown).
template <typename Fn>
Error catch_error(Fn&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e;
    }
    ADD_FAILURE() << "expected a kiln::Error";
    return Error(ErrorCode::kInternal, "no error");
}

Error deserialize_error(const std::vector<uint8_t>& bytes, const std::string& source = "model.plan") {
    return catch_error([&] { deserialize(bytes.data(), bytes.size(), source); });
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

/// A fresh empty directory under the test temp dir.
std::string make_temp_dir() {
    std::string tmpl = ::testing::TempDir() + "kiln_plan_io_XXXXXX";
    char* dir = ::mkdtemp(tmpl.data());
    EXPECT_NE(dir, nullptr);
    return tmpl;
}

std::vector<std::string> list_dir(const std::string& dir) {
    std::vector<std::string> names;
    if (DIR* d = ::opendir(dir.c_str())) {
        while (dirent* e = ::readdir(d))
            if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
        ::closedir(d);
    }
    std::sort(names.begin(), names.end());
    return names;
}

// ---------------------------------------------------------------------------------------------- round trips

TEST(PlanIo, RoundTripsEveryField) {
    PlanModel m = make_model();
    std::vector<uint8_t> bytes = serialize(m);
    PlanModel back = deserialize(bytes.data(), bytes.size(), "model.plan");
    expect_model_eq(m, back);
    EXPECT_EQ(back.kiln_version, kVersionString);  // an empty kiln_version is written as this build's
    EXPECT_EQ(back.format_version, kFormatVersion);
    // The copy is deterministic: serializing the result gives the same bytes.
    EXPECT_EQ(serialize(back), bytes);
}

TEST(PlanIo, RoundTripsAnEmptyModel) {
    PlanModel m;
    std::vector<uint8_t> bytes = serialize(m);
    PlanModel back = deserialize(bytes.data(), bytes.size(), "empty.plan");
    expect_model_eq(m, back);
    EXPECT_EQ(get_u64(bytes, kWeightsSizeAt), 0u);
}

TEST(PlanIo, KeepsFloatAttributesBitExact) {
    PlanModel m;
    m.values = {value("x", DataType::kFloat32, {1})};
    PlanNode n;
    n.op_type = "Custom";
    n.outputs = {0};
    const float kSpecial[] = {-0.0f, std::numeric_limits<float>::quiet_NaN(), -std::numeric_limits<float>::infinity(),
                              std::numeric_limits<float>::denorm_min(), std::numeric_limits<float>::max()};
    for (size_t i = 0; i < std::size(kSpecial); ++i) n.attrs.set("f" + std::to_string(i), kSpecial[i]);
    n.attrs.set("fs", std::vector<float>(std::begin(kSpecial), std::end(kSpecial)));
    m.nodes = {n};
    std::vector<uint8_t> bytes = serialize(m);
    PlanModel back = deserialize(bytes.data(), bytes.size(), "f.plan");
    const AttributeMap& attrs = back.nodes.at(0).attrs;
    auto bits = [](float f) {
        uint32_t u;
        std::memcpy(&u, &f, 4);
        return u;
    };
    std::vector<float> fs = attrs.get_floats("fs");
    ASSERT_EQ(fs.size(), std::size(kSpecial));
    for (size_t i = 0; i < std::size(kSpecial); ++i) {
        EXPECT_EQ(bits(attrs.get_float("f" + std::to_string(i), 1.f)), bits(kSpecial[i])) << i;
        EXPECT_EQ(bits(fs[i]), bits(kSpecial[i])) << i;
    }
}

TEST(PlanIo, HeaderFieldsAndWeightAlignment) {
    PlanModel m = make_model();
    std::vector<uint8_t> bytes = serialize(m);
    ASSERT_GE(bytes.size(), kHeaderSize);
    EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 8), "KILNPLAN");
    EXPECT_EQ(get_u32(bytes, 8), kHeaderSize);
    EXPECT_EQ(get_u32(bytes, kFormatVersionAt), kFormatVersion);
    EXPECT_STREQ(reinterpret_cast<const char*>(&bytes[kKilnVersionAt]), kVersionString);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(&bytes[kBackendAt])), "cpu");
    EXPECT_EQ(get_u64(bytes, kFileSizeAt), bytes.size());
    EXPECT_EQ(get_u64(bytes, kFlatbufferOffsetAt), kHeaderSize);
    EXPECT_EQ(std::string(bytes.begin() + kHeaderSize + 4, bytes.begin() + kHeaderSize + 8), "KLNP");  // fb identifier
    const uint64_t fb_end = kHeaderSize + get_u64(bytes, kFlatbufferSizeAt);
    const uint64_t weights_at = get_u64(bytes, kWeightsOffsetAt);
    EXPECT_EQ(weights_at % 64, 0u);
    EXPECT_GE(weights_at, fb_end);
    EXPECT_EQ(weights_at + get_u64(bytes, kWeightsSizeAt), bytes.size());
    EXPECT_EQ(get_u64(bytes, kChecksumAt), checksum_of(bytes));
    for (size_t i = 96; i < kHeaderSize; ++i) EXPECT_EQ(bytes[i], 0) << "reserved header byte " << i;

    // Every weight's bytes sit in the weights section at a 64-byte aligned file offset.
    uint64_t previous_end = weights_at;
    for (size_t i = 0; i < m.weights.size(); ++i) {
        const Tensor& w = m.weights[i];
        if (w.bytes() == 0) continue;
        const auto* p = static_cast<const uint8_t*>(w.raw());
        auto it = bytes.begin() + previous_end;
        while (it != bytes.end() && (it - bytes.begin()) % 64 != 0) ++it;
        auto found = std::search(it, bytes.end(), p, p + w.bytes());
        ASSERT_NE(found, bytes.end()) << "weight " << i;
        const size_t at = found - bytes.begin();
        EXPECT_EQ(at % 64, 0u) << "weight " << i << " at " << at;
        previous_end = at + w.bytes();
    }
}

TEST(PlanIo, ReadsFromAMisalignedBuffer) {
    std::vector<uint8_t> bytes = serialize(make_model());
    std::vector<uint8_t> shifted(bytes.size() + 3);
    for (size_t shift = 1; shift < 4; ++shift) {
        std::copy(bytes.begin(), bytes.end(), shifted.begin() + shift);
        expect_model_eq(make_model(), deserialize(shifted.data() + shift, bytes.size(), "shifted.plan"));
    }
}

// ---------------------------------------------------------------------------------------------- damaged bytes

TEST(PlanIo, RejectsBadMagic) {
    std::vector<uint8_t> bytes = serialize(make_model());
    for (std::vector<uint8_t> bad : {std::vector<uint8_t>{}, std::vector<uint8_t>{'K', 'I', 'L', 'N'},
                                     std::vector<uint8_t>(bytes.begin(), bytes.begin() + 7)}) {
        Error e = deserialize_error(bad, "weights.onnx");
        EXPECT_EQ(e.code(), ErrorCode::kInvalidPlan);
        EXPECT_EQ(std::string(e.what()), "file 'weights.onnx' is not a kiln plan (bad magic)");
    }
    bytes[3] = 'X';
    EXPECT_TRUE(contains(deserialize_error(bytes, "weights.onnx").what(), "not a kiln plan (bad magic)"));
    EXPECT_EQ(deserialize_error(bytes).code(), ErrorCode::kInvalidPlan);
    EXPECT_THROW(deserialize(nullptr, 100, "null.plan"), Error);
}

TEST(PlanIo, EveryTruncationThrows) {
    PlanModel m = make_model();
    std::vector<uint8_t> bytes = serialize(m);
    ASSERT_GT(bytes.size(), 1000u);
    for (size_t len = 0; len < bytes.size(); ++len) {
        // A copy of exactly `len` bytes, so ASan catches any read past the end.
        std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + len);
        Error e = deserialize_error(cut, "cut.plan");
        ASSERT_EQ(e.code(), ErrorCode::kInvalidPlan) << len << ": " << e.what();
        ASSERT_TRUE(contains(e.what(), "'cut.plan'")) << e.what();
        if (len >= 8) {
            const std::string want = "is truncated: expected " +
                                     std::to_string(len >= 56 ? bytes.size() : kHeaderSize) + " bytes, found " +
                                     std::to_string(len) + "; rebuild it with `kiln build`";
            ASSERT_TRUE(contains(e.what(), want)) << len << ": " << e.what();
        }
    }
    std::vector<uint8_t> longer = bytes;
    longer.push_back(0);
    Error e = deserialize_error(longer);
    EXPECT_EQ(e.code(), ErrorCode::kInvalidPlan);
    EXPECT_TRUE(contains(e.what(), "trailing data")) << e.what();
}

TEST(PlanIo, DetectsEveryByteFlip) {
    const std::vector<uint8_t> bytes = serialize(make_model());
    std::mt19937 rng(42);
    for (int trial = 0; trial < 3000; ++trial) {
        std::vector<uint8_t> bad = bytes;
        // Every byte of the header, then random positions.
        const size_t at = trial < static_cast<int>(kHeaderSize) ? trial : rng() % bad.size();
        bad[at] ^= static_cast<uint8_t>(1 + rng() % 255);
        Error e = deserialize_error(bad, "flip.plan");
        ASSERT_TRUE(contains(e.what(), "'flip.plan'")) << e.what();
        // The kiln version is compared up to its terminating NUL; damage behind it is a checksum mismatch.
        const size_t version_end = kKilnVersionAt + std::strlen(kVersionString) + 1;
        if (at >= kFormatVersionAt && at < version_end) {
            ASSERT_EQ(e.code(), ErrorCode::kVersionMismatch) << at << ": " << e.what();
        } else {
            ASSERT_EQ(e.code(), ErrorCode::kInvalidPlan) << at << ": " << e.what();
        }
        if (at >= version_end && (at < kFileSizeAt || at >= kFileSizeAt + 8)) {
            ASSERT_TRUE(contains(e.what(), "is corrupted (checksum mismatch)")) << at << ": " << e.what();
        }
    }
}

TEST(PlanIo, SurvivesDamageBehindAValidChecksum) {
    // A hostile or buggy writer can produce a consistent checksum over nonsense: the reader must still throw
    // kiln::Error (or read something valid), never crash. Run under KILN_SANITIZE=ON to check for UB.
    const std::vector<uint8_t> bytes = serialize(make_model());
    const size_t fb_size = get_u64(bytes, kFlatbufferSizeAt);
    std::mt19937 rng(7);
    int errors = 0;
    for (int trial = 0; trial < 4000; ++trial) {
        std::vector<uint8_t> bad = bytes;
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int f = 0; f < flips; ++f) {
            size_t at = kHeaderSize + rng() % (trial % 2 ? fb_size : bad.size() - kHeaderSize);
            switch (rng() % 3) {
                case 0: bad[at] ^= static_cast<uint8_t>(1u << (rng() % 8)); break;
                case 1: bad[at] = static_cast<uint8_t>(rng()); break;
                default: bad[at] = 0xff; break;
            }
        }
        if (trial % 10 == 0) {  // section bounds in the header, too
            const size_t fields[] = {kFlatbufferOffsetAt, kFlatbufferSizeAt, kWeightsOffsetAt, kWeightsSizeAt};
            const size_t field = fields[rng() % 4];
            put_u64(bad, field, get_u64(bad, field) + (static_cast<int64_t>(rng() % 17) - 8) * 8);
        }
        fix_checksum(bad);
        try {
            deserialize(bad.data(), bad.size(), "fuzz.plan");
        } catch (const Error& e) {
            ++errors;
            ASSERT_TRUE(contains(e.what(), "'fuzz.plan'")) << e.what();
            ASSERT_EQ(e.code(), ErrorCode::kInvalidPlan) << e.what();
        }
    }
    EXPECT_GT(errors, 100);
}

TEST(PlanIo, ReportsAnotherFormatVersion) {
    std::vector<uint8_t> bytes = serialize(make_model());
    put_u32(bytes, kFormatVersionAt, kFormatVersion + 1);
    Error e = deserialize_error(bytes, "old.plan");
    EXPECT_EQ(e.code(), ErrorCode::kVersionMismatch);
    const std::string msg = e.what();
    EXPECT_TRUE(contains(msg, "'old.plan'")) << msg;
    EXPECT_TRUE(contains(msg, "plan format " + std::to_string(kFormatVersion + 1))) << msg;
    EXPECT_TRUE(contains(msg, "plan format " + std::to_string(kFormatVersion))) << msg;
    EXPECT_TRUE(contains(msg, "rebuild the plan with this kiln (`kiln build MODEL -o PLAN`)")) << msg;

    // The version is reported before truncation or corruption (which a newer layout would look like).
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + 40);
    EXPECT_EQ(deserialize_error(cut).code(), ErrorCode::kVersionMismatch);
    bytes[bytes.size() - 1] ^= 1;
    EXPECT_EQ(deserialize_error(bytes).code(), ErrorCode::kVersionMismatch);
}

TEST(PlanIo, ReportsAnotherKilnVersion) {
    std::vector<uint8_t> bytes = serialize(make_model());
    std::memset(&bytes[kKilnVersionAt], 0, 16);
    std::memcpy(&bytes[kKilnVersionAt], "0.0.9", 5);
    Error e = deserialize_error(bytes, "old.plan");
    EXPECT_EQ(e.code(), ErrorCode::kVersionMismatch);
    EXPECT_TRUE(contains(e.what(), "built by kiln 0.0.9")) << e.what();
    EXPECT_TRUE(contains(e.what(), std::string("this is kiln ") + kVersionString)) << e.what();

    PlanModel m = make_model();
    m.kiln_version = "99.0.0";  // serialize keeps a recorded version, the reader refuses it
    std::vector<uint8_t> other = serialize(m);
    EXPECT_EQ(deserialize_error(other).code(), ErrorCode::kVersionMismatch);
}

TEST(PlanIo, RefusesToWriteAnInconsistentModel) {
    auto expect_invalid = [](const PlanModel& m, const std::string& part) {
        Error e = catch_error([&] { serialize(m); });
        EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
        EXPECT_TRUE(contains(e.what(), part)) << e.what();
    };
    PlanModel m = make_model();
    m.nodes[0].inputs[0] = 99;
    expect_invalid(m, "input value id 99");
    m = make_model();
    m.values[0].weight = 42;
    expect_invalid(m, "weight 42");
    m = make_model();
    m.outputs.push_back(-1);
    expect_invalid(m, "graph output value id -1");
    m = make_model();
    m.target_backend = "a-backend-name-longer-than-16";
    expect_invalid(m, "target backend");
    m = make_model();
    m.weights.push_back(Tensor());  // no data
    expect_invalid(m, "weight 9 has no data");
    m = make_model();
    m.memory.offsets[11] = 450;  // 96 bytes at 450 overrun the 512-byte arena
    expect_invalid(m, "does not fit");
    m = make_model();
    m.values[0].layout = Layout::kNChw16c;  // symbolic dims: no place for the padding
    expect_invalid(m, "not a 4-D activation of static shape");
    m = make_model();
    m.values[10].layout = Layout::kNChw16c;  // [1,3,4,4] padded to 16 channels: 1024 bytes overrun the arena
    expect_invalid(m, "(1024 bytes) does not fit");
}

TEST(PlanIo, RoundTripsBlockedLayouts) {
    PlanModel m = make_model();
    m.values[10].layout = Layout::kNChw16c;
    m.memory.arena_bytes = 2048;
    m.memory.offsets[11] = 1024;
    std::vector<uint8_t> bytes = serialize(m);
    PlanModel back = deserialize(bytes.data(), bytes.size(), "model.plan");
    expect_model_eq(m, back);
    EXPECT_EQ(back.values[10].layout, Layout::kNChw16c);
    // nChw16c_bf16: 2 bytes per element (16 padded channels x 4 x 4 = 512 bytes, where fp32 would need 1024)
    m.values[10].layout = Layout::kNChw16cBf16;
    m.memory.offsets[10] = 1536;
    bytes = serialize(m);
    back = deserialize(bytes.data(), bytes.size(), "model.plan");
    expect_model_eq(m, back);
    EXPECT_EQ(back.values[10].layout, Layout::kNChw16cBf16);
    m.memory.offsets[10] = 1537;
    Error e = catch_error([&] { serialize(m); });
    EXPECT_TRUE(contains(e.what(), "does not fit")) << e.what();
}

// ---------------------------------------------------------------------------------------------- files

TEST(PlanFile, WritesAndReadsBack) {
    const std::string dir = make_temp_dir();
    const std::string path = dir + "/model.plan";
    std::vector<uint8_t> bytes = serialize(make_model());
    write_file_atomic(path, bytes);
    EXPECT_EQ(read_file(path), bytes);
    expect_model_eq(make_model(), deserialize(read_file(path).data(), bytes.size(), path));
    // Overwriting replaces the file and leaves no temporary behind.
    write_file_atomic(path, {1, 2, 3});
    EXPECT_EQ(read_file(path), (std::vector<uint8_t>{1, 2, 3}));
    write_file_atomic(path, {});
    EXPECT_TRUE(read_file(path).empty());
    EXPECT_EQ(list_dir(dir), std::vector<std::string>{"model.plan"});
}

TEST(PlanFile, FailedWritesLeaveNothingBehind) {
    const std::string dir = make_temp_dir();
    const std::string missing = dir + "/no_such_dir/model.plan";
    Error e = catch_error([&] { write_file_atomic(missing, {1, 2, 3}); });
    EXPECT_EQ(e.code(), ErrorCode::kIoError);
    EXPECT_TRUE(contains(e.what(), "'" + missing + "'")) << e.what();
    EXPECT_TRUE(contains(e.what(), "No such file or directory")) << e.what();
    EXPECT_TRUE(list_dir(dir).empty());

    // The temporary file is created, but the rename onto a directory fails: it must be removed.
    ASSERT_EQ(::mkdir((dir + "/taken").c_str(), 0755), 0);
    e = catch_error([&] { write_file_atomic(dir + "/taken", {1, 2, 3}); });
    EXPECT_EQ(e.code(), ErrorCode::kIoError);
    EXPECT_TRUE(contains(e.what(), "'" + dir + "/taken'")) << e.what();
    EXPECT_EQ(list_dir(dir), std::vector<std::string>{"taken"});
}

TEST(PlanFile, ReadErrorsNameTheFile) {
    const std::string dir = make_temp_dir();
    Error e = catch_error([&] { read_file(dir + "/missing.plan"); });
    EXPECT_EQ(e.code(), ErrorCode::kIoError);
    EXPECT_EQ(std::string(e.what()), "cannot open '" + dir + "/missing.plan': No such file or directory");
    e = catch_error([&] { read_file(dir); });
    EXPECT_EQ(e.code(), ErrorCode::kIoError);
    EXPECT_EQ(std::string(e.what()), "cannot open '" + dir + "': Is a directory");
}

}  // namespace
}  // namespace kiln::plan
