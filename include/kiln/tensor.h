#pragma once
/// \file tensor.h
/// Data types, (symbolic) dimensions and the host tensor type used at kiln's API boundary.
///
/// Example usage:
/// \code
///   kiln::Tensor x(kiln::DataType::kFloat32, {1, 3, 224, 224});
///   std::fill(x.data<float>(), x.data<float>() + x.numel(), 0.5f);
/// \endcode
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace kiln {

enum class DataType : uint8_t {
    kFloat32 = 0,
    kFloat16,
    kBFloat16,
    kFloat64,
    kInt8,
    kUInt8,
    kInt32,
    kInt64,
    kBool,
};

size_t dtype_size(DataType t);
const char* dtype_name(DataType t);
/// Parses "float32", "f32", "int64", ... ; throws Error(kInvalidArgument) on unknown names.
DataType parse_dtype(const std::string& name);

/// One dimension: a known extent (`value >= 0`) or a named symbol such as "batch" (value < 0).
/// An unnamed unknown dimension has value -1 and an empty symbol.
struct Dim {
    int64_t value = -1;
    std::string symbol;

    Dim() = default;
    Dim(int64_t v) : value(v) {}  // NOLINT(google-explicit-constructor): dims read naturally as numbers
    explicit Dim(std::string sym) : value(-1), symbol(std::move(sym)) {}
    bool is_static() const { return value >= 0; }
    bool operator==(const Dim& o) const { return value == o.value && symbol == o.symbol; }
    std::string str() const;
};

using Shape = std::vector<int64_t>;
using SymShape = std::vector<Dim>;

int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);     // "1x3x224x224", "scalar" for rank 0
std::string shape_str(const SymShape& s);  // "batchx3x224x224"
bool is_static(const SymShape& s);
SymShape to_sym(const Shape& s);

/// A dense, row-major host tensor. Copies share the buffer (like a shared_ptr); use clone() for a deep copy.
class Tensor {
public:
    Tensor() = default;
    /// Allocates a zero-initialised tensor (64-byte aligned).
    Tensor(DataType dtype, Shape shape);
    /// Wraps caller-owned memory without copying; the caller keeps it alive while the tensor is used.
    static Tensor wrap(DataType dtype, Shape shape, void* data);
    /// Allocates like the constructor but leaves the contents unspecified (no zeroing): for a buffer that is
    /// about to be overwritten completely.
    static Tensor uninitialized(DataType dtype, Shape shape);

    DataType dtype() const { return dtype_; }
    const Shape& shape() const { return shape_; }
    int64_t dim(int i) const { return shape_.at(i < 0 ? i + shape_.size() : i); }
    int rank() const { return static_cast<int>(shape_.size()); }
    int64_t numel() const { return shape_numel(shape_); }
    size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
    bool empty() const { return data_ == nullptr && numel() != 0; }
    bool defined() const { return data_ != nullptr || (!shape_.empty() && numel() == 0) || has_storage_; }

    void* raw() { return data_; }
    const void* raw() const { return data_; }
    template <typename T>
    T* data() { return static_cast<T*>(data_); }
    template <typename T>
    const T* data() const { return static_cast<const T*>(data_); }

    Tensor clone() const;
    /// Deep equality: same dtype, shape and bytes.
    bool operator==(const Tensor& o) const;
    /// Same buffer, new shape with the same element count.
    Tensor reshaped(Shape shape) const;
    /// Reads element i converted to double / int64 (any numeric dtype); for shape arithmetic and tests.
    double get_f64(int64_t i) const;
    int64_t get_i64(int64_t i) const;
    std::vector<int64_t> to_i64_vector() const;

private:
    void allocate();  // 64-byte aligned storage for shape_ and dtype_, contents unspecified

    DataType dtype_ = DataType::kFloat32;
    Shape shape_;
    std::shared_ptr<void> storage_;
    void* data_ = nullptr;
    bool has_storage_ = false;
};

/// Reads a float16 / bfloat16 bit pattern as float and back (round to nearest even).
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
float bf16_to_float(uint16_t h);
uint16_t float_to_bf16(float f);

}  // namespace kiln
