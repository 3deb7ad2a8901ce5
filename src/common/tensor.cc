// Host tensor, dtypes, dims and fp16/bf16 conversion.
#include <cstdlib>
#include <cstring>
#include <new>

#include "kiln/tensor.h"
#include "src/common/check.h"

namespace kiln {

size_t dtype_size(DataType t) {
    switch (t) {
        case DataType::kFloat32: return 4;
        case DataType::kFloat16: return 2;
        case DataType::kBFloat16: return 2;
        case DataType::kFloat64: return 8;
        case DataType::kInt8: return 1;
        case DataType::kUInt8: return 1;
        case DataType::kInt32: return 4;
        case DataType::kInt64: return 8;
        case DataType::kBool: return 1;
    }
    return 0;
}

const char* dtype_name(DataType t) {
    switch (t) {
        case DataType::kFloat32: return "float32";
        case DataType::kFloat16: return "float16";
        case DataType::kBFloat16: return "bfloat16";
        case DataType::kFloat64: return "float64";
        case DataType::kInt8: return "int8";
        case DataType::kUInt8: return "uint8";
        case DataType::kInt32: return "int32";
        case DataType::kInt64: return "int64";
        case DataType::kBool: return "bool";
    }
    return "?";
}

DataType parse_dtype(const std::string& n) {
    if (n == "float32" || n == "f32" || n == "float") return DataType::kFloat32;
    if (n == "float16" || n == "f16" || n == "half") return DataType::kFloat16;
    if (n == "bfloat16" || n == "bf16") return DataType::kBFloat16;
    if (n == "float64" || n == "f64" || n == "double") return DataType::kFloat64;
    if (n == "int8" || n == "i8") return DataType::kInt8;
    if (n == "uint8" || n == "u8") return DataType::kUInt8;
    if (n == "int32" || n == "i32") return DataType::kInt32;
    if (n == "int64" || n == "i64") return DataType::kInt64;
    if (n == "bool") return DataType::kBool;
    KILN_FAIL(kInvalidArgument, "unknown data type '", n, "'");
}

std::string Dim::str() const {
    if (value >= 0) return std::to_string(value);
    return symbol.empty() ? "?" : symbol;
}

int64_t shape_numel(const Shape& s) {
    int64_t n = 1;
    for (int64_t d : s) n *= d;
    return n;
}

std::string shape_str(const Shape& s) {
    if (s.empty()) return "scalar";
    return join(s, "x");
}

std::string shape_str(const SymShape& s) {
    if (s.empty()) return "scalar";
    std::vector<std::string> parts;
    for (const Dim& d : s) parts.push_back(d.str());
    return join(parts, "x");
}

bool is_static(const SymShape& s) {
    for (const Dim& d : s)
        if (!d.is_static()) return false;
    return true;
}

SymShape to_sym(const Shape& s) { return SymShape(s.begin(), s.end()); }

Tensor::Tensor(DataType dtype, Shape shape) : Tensor(uninitialized(dtype, std::move(shape))) {
    std::memset(data_, 0, (bytes() + 63) / 64 * 64);
}

Tensor Tensor::uninitialized(DataType dtype, Shape shape) {
    Tensor t;
    t.dtype_ = dtype;
    t.shape_ = std::move(shape);
    t.allocate();
    return t;
}

void Tensor::allocate() {
    for (int64_t d : shape_)
        KILN_CHECK(d >= 0, kInvalidArgument, "negative dimension in tensor shape ", shape_str(shape_));
    size_t n = bytes();
    size_t alloc = (n + 63) / 64 * 64;
    if (alloc == 0) alloc = 64;
    void* p = std::aligned_alloc(64, alloc);
    if (!p) KILN_FAIL(kOutOfMemory, "cannot allocate ", n, " bytes for a ", shape_str(shape_), " ", dtype_name(dtype_),
                      " tensor; reduce the batch size or free memory");
    storage_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
    data_ = p;
    has_storage_ = true;
}

Tensor Tensor::wrap(DataType dtype, Shape shape, void* data) {
    Tensor t;
    t.dtype_ = dtype;
    t.shape_ = std::move(shape);
    t.data_ = data;
    t.has_storage_ = true;
    return t;
}

Tensor Tensor::clone() const {
    Tensor t(dtype_, shape_);
    if (bytes()) std::memcpy(t.data_, data_, bytes());
    return t;
}

bool Tensor::operator==(const Tensor& o) const {
    if (dtype_ != o.dtype_ || shape_ != o.shape_) return false;
    return bytes() == 0 || std::memcmp(data_, o.data_, bytes()) == 0;
}

Tensor Tensor::reshaped(Shape shape) const {
    KILN_CHECK(shape_numel(shape) == numel(), kInvalidArgument, "cannot reshape ", shape_str(shape_), " to ",
               shape_str(shape));
    Tensor t = *this;
    t.shape_ = std::move(shape);
    return t;
}

double Tensor::get_f64(int64_t i) const {
    switch (dtype_) {
        case DataType::kFloat32: return data<float>()[i];
        case DataType::kFloat16: return half_to_float(data<uint16_t>()[i]);
        case DataType::kBFloat16: return bf16_to_float(data<uint16_t>()[i]);
        case DataType::kFloat64: return data<double>()[i];
        case DataType::kInt8: return data<int8_t>()[i];
        case DataType::kUInt8: return data<uint8_t>()[i];
        case DataType::kInt32: return data<int32_t>()[i];
        case DataType::kInt64: return static_cast<double>(data<int64_t>()[i]);
        case DataType::kBool: return data<uint8_t>()[i] ? 1.0 : 0.0;
    }
    return 0;
}

int64_t Tensor::get_i64(int64_t i) const {
    switch (dtype_) {
        case DataType::kInt64: return data<int64_t>()[i];
        case DataType::kInt32: return data<int32_t>()[i];
        default: return static_cast<int64_t>(get_f64(i));
    }
}

std::vector<int64_t> Tensor::to_i64_vector() const {
    std::vector<int64_t> v(numel());
    for (int64_t i = 0; i < numel(); ++i) v[i] = get_i64(i);
    return v;
}

float half_to_float(uint16_t h) {
    uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else {  // subnormal: normalise
            exp = 127 - 15 + 1;
            while (!(mant & 0x400)) {
                mant <<= 1;
                --exp;
            }
            bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t float_to_half(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t absx = x & 0x7fffffffu;
    if (absx >= 0x7f800000u) return static_cast<uint16_t>(sign | 0x7c00u | (absx > 0x7f800000u ? 0x200u : 0));
    if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
    if (absx < 0x38800000u) {  // subnormal or zero in half
        float af;
        std::memcpy(&af, &absx, 4);
        float scaled = af * 16777216.0f;  // 2^24: half subnormal unit
        uint32_t m = static_cast<uint32_t>(scaled);
        float rem = scaled - static_cast<float>(m);
        if (rem > 0.5f || (rem == 0.5f && (m & 1))) ++m;
        return static_cast<uint16_t>(sign | m);
    }
    uint32_t mant = absx & 0x7fffffu, exp = (absx >> 23) - 127 + 15;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) ++h;
    return static_cast<uint16_t>(sign | h);
}

float bf16_to_float(uint16_t h) {
    uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
}

uint16_t float_to_bf16(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40);
    uint32_t rounding = 0x7fffu + ((x >> 16) & 1);
    return static_cast<uint16_t>((x + rounding) >> 16);
}

}  // namespace kiln
