#include "tools/cli/npy.h"

#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include "kiln/onnx_parser.h"
#include "src/common/check.h"
#include "src/plan/plan_model.h"

namespace kiln::cli {

namespace {

const char* npy_descr(DataType t) {
    switch (t) {
        case DataType::kFloat32: return "<f4";
        case DataType::kFloat16: return "<f2";
        case DataType::kFloat64: return "<f8";
        case DataType::kInt8: return "|i1";
        case DataType::kUInt8: return "|u1";
        case DataType::kInt32: return "<i4";
        case DataType::kInt64: return "<i8";
        case DataType::kBool: return "|b1";
        case DataType::kBFloat16: break;
    }
    KILN_FAIL(kUnsupported, "bfloat16 tensors cannot be stored as .npy");
}

DataType parse_descr(const std::string& d, const std::string& path) {
    static const std::pair<const char*, DataType> kMap[] = {
        {"<f4", DataType::kFloat32}, {"<f2", DataType::kFloat16}, {"<f8", DataType::kFloat64},
        {"|i1", DataType::kInt8},    {"|u1", DataType::kUInt8},   {"<i4", DataType::kInt32},
        {"<i8", DataType::kInt64},   {"|b1", DataType::kBool},
    };
    for (auto& [k, v] : kMap)
        if (d == k) return v;
    KILN_FAIL(kUnsupported, "'", path, "': .npy dtype '", d, "' is not supported (use float32/16/64, int8/32/64, ",
              "uint8 or bool, little-endian)");
}

std::string dict_value(const std::string& header, const std::string& key, const std::string& path) {
    size_t k = header.find("'" + key + "'");
    KILN_CHECK(k != std::string::npos, kInvalidArgument, "'", path, "': .npy header lacks '", key, "'");
    size_t colon = header.find(':', k);
    KILN_CHECK(colon != std::string::npos, kInvalidArgument, "'", path, "': malformed .npy header");
    size_t start = header.find_first_not_of(' ', colon + 1);
    if (header[start] == '(') return header.substr(start + 1, header.find(')', start) - start - 1);
    size_t end = header.find_first_of(",}", start);
    std::string v = header.substr(start, end - start);
    if (!v.empty() && v.front() == '\'') v = v.substr(1, v.size() - 2);
    return v;
}

}  // namespace

Tensor read_npy(const std::string& path) {
    std::vector<uint8_t> bytes = plan::read_file(path);
    KILN_CHECK(bytes.size() >= 10 && std::memcmp(bytes.data(), "\x93NUMPY", 6) == 0, kInvalidArgument, "'", path,
               "' is not a .npy file (bad magic)");
    int major = bytes[6];
    size_t hlen, hstart;
    if (major == 1) {
        hlen = bytes[8] | (bytes[9] << 8);
        hstart = 10;
    } else {
        KILN_CHECK(bytes.size() >= 12, kInvalidArgument, "'", path, "': truncated .npy header");
        hlen = bytes[8] | (bytes[9] << 8) | (bytes[10] << 16) | (static_cast<size_t>(bytes[11]) << 24);
        hstart = 12;
    }
    KILN_CHECK(hstart + hlen <= bytes.size(), kInvalidArgument, "'", path, "': truncated .npy header");
    std::string header(reinterpret_cast<const char*>(bytes.data() + hstart), hlen);
    DataType dt = parse_descr(dict_value(header, "descr", path), path);
    KILN_CHECK(dict_value(header, "fortran_order", path) == "False", kUnsupported, "'", path,
               "': Fortran-order arrays are not supported; save with np.ascontiguousarray");
    Shape shape;
    std::string dims = dict_value(header, "shape", path);
    size_t pos = 0;
    while (pos < dims.size()) {
        size_t next = dims.find(',', pos);
        std::string tok = dims.substr(pos, next == std::string::npos ? std::string::npos : next - pos);
        tok.erase(0, tok.find_first_not_of(' '));
        if (!tok.empty()) shape.push_back(std::stoll(tok));
        if (next == std::string::npos) break;
        pos = next + 1;
    }
    Tensor t(dt, shape);
    size_t data_start = hstart + hlen;
    KILN_CHECK(bytes.size() - data_start == t.bytes(), kInvalidArgument, "'", path, "': holds ",
               bytes.size() - data_start, " data bytes, but its ", shape_str(shape), " ", dtype_name(dt),
               " header needs ", t.bytes(), " (truncated file?)");
    if (t.bytes()) std::memcpy(t.raw(), bytes.data() + data_start, t.bytes());
    return t;
}

void write_npy(const std::string& path, const Tensor& t) {
    std::string shape;
    for (int64_t d : t.shape()) shape += std::to_string(d) + ", ";
    if (t.rank() > 1) shape.resize(shape.size() - 2);
    std::string header =
        cat("{'descr': '", npy_descr(t.dtype()), "', 'fortran_order': False, 'shape': (", shape, "), }");
    size_t total = 10 + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header += '\n';
    std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
    out.push_back(header.size() & 0xff);
    out.push_back((header.size() >> 8) & 0xff);
    out.insert(out.end(), header.begin(), header.end());
    const uint8_t* d = static_cast<const uint8_t*>(t.raw());
    if (t.bytes()) out.insert(out.end(), d, d + t.bytes());
    plan::write_file_atomic(path, out);
}

Tensor read_tensor_file(const std::string& path) {
    std::vector<uint8_t> bytes = plan::read_file(path);
    if (bytes.size() >= 6 && std::memcmp(bytes.data(), "\x93NUMPY", 6) == 0) return read_npy(path);
    return read_tensor_proto(bytes.data(), bytes.size(), path);
}

}  // namespace kiln::cli
