// Python <-> kiln conversions: arrays and DLPack tensors, shapes, attributes (see tensor_convert.h).
#include "tensor_convert.h"

#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstring>
#include <memory>

namespace kiln::python {

namespace {

using dc = nb::dlpack::dtype_code;

std::string py_type_name(nb::handle obj) { return nb::cast<std::string>(nb::type_name(obj.type())); }

const char* device_name(int device_type) {
    switch (device_type) {
        case nb::device::cpu::value: return "cpu";
        case nb::device::cuda::value: return "cuda";
        case nb::device::cuda_host::value: return "cuda_host";
        case nb::device::cuda_managed::value: return "cuda_managed";
        case nb::device::rocm::value: return "rocm";
        case nb::device::metal::value: return "metal";
        case nb::device::vulkan::value: return "vulkan";
        case nb::device::opencl::value: return "opencl";
        default: return "an accelerator";
    }
}

std::string dlpack_dtype_str(nb::dlpack::dtype t) {
    const char* kind = "code";
    switch (static_cast<dc>(t.code)) {
        case dc::Int: kind = "int"; break;
        case dc::UInt: kind = "uint"; break;
        case dc::Float: kind = "float"; break;
        case dc::Bfloat: kind = "bfloat"; break;
        case dc::Complex: kind = "complex"; break;
        case dc::Bool: kind = "bool"; break;
        default: break;
    }
    return std::string(kind) + std::to_string(t.bits) + (t.lanes != 1 ? "x" + std::to_string(t.lanes) : "");
}

// Copies an arbitrarily strided array (strides in elements) into dense row-major memory.
void strided_copy(const uint8_t* src, uint8_t*& dst, const AnyArray& a, size_t dim, size_t item) {
    int64_t n = static_cast<int64_t>(a.shape(dim));
    int64_t step = a.stride(dim) * static_cast<int64_t>(item);
    for (int64_t i = 0; i < n; ++i) {
        if (dim + 1 == a.ndim()) {
            std::memcpy(dst, src + i * step, item);
            dst += item;
        } else {
            strided_copy(src + i * step, dst, a, dim + 1, item);
        }
    }
}

}  // namespace

bool is_c_contiguous(const AnyArray& a) {
    int64_t expected = 1;
    for (size_t i = a.ndim(); i-- > 0;) {
        if (a.shape(i) != 1 && a.stride(i) != expected) return false;
        expected *= static_cast<int64_t>(a.shape(i));
    }
    return true;
}

DataType dtype_from_dlpack(nb::dlpack::dtype t, const std::string& what) {
    if (t.lanes == 1) {
        switch (static_cast<dc>(t.code)) {
            case dc::Float:
                if (t.bits == 16) return DataType::kFloat16;
                if (t.bits == 32) return DataType::kFloat32;
                if (t.bits == 64) return DataType::kFloat64;
                break;
            case dc::Bfloat:
                if (t.bits == 16) return DataType::kBFloat16;
                break;
            case dc::Int:
                if (t.bits == 8) return DataType::kInt8;
                if (t.bits == 32) return DataType::kInt32;
                if (t.bits == 64) return DataType::kInt64;
                break;
            case dc::UInt:
                if (t.bits == 8) return DataType::kUInt8;
                break;
            case dc::Bool:
                if (t.bits == 8) return DataType::kBool;
                break;
            default: break;
        }
    }
    throw Error(ErrorCode::kInvalidArgument,
                what + " has dtype " + dlpack_dtype_str(t) +
                    ", which kiln does not support (supported: float32, float16, bfloat16, float64, int8, uint8, "
                    "int32, int64, bool)");
}

nb::dlpack::dtype dlpack_from_dtype(DataType t) {
    auto make = [](dc code, int bits) {
        nb::dlpack::dtype d;
        d.code = static_cast<uint8_t>(code);
        d.bits = static_cast<uint8_t>(bits);
        d.lanes = 1;
        return d;
    };
    switch (t) {
        case DataType::kFloat32: return make(dc::Float, 32);
        case DataType::kFloat16: return make(dc::Float, 16);
        case DataType::kBFloat16: return make(dc::Bfloat, 16);
        case DataType::kFloat64: return make(dc::Float, 64);
        case DataType::kInt8: return make(dc::Int, 8);
        case DataType::kUInt8: return make(dc::UInt, 8);
        case DataType::kInt32: return make(dc::Int, 32);
        case DataType::kInt64: return make(dc::Int, 64);
        case DataType::kBool: return make(dc::Bool, 8);
    }
    throw Error(ErrorCode::kInternal, "unknown kiln dtype");
}

const char* numpy_dtype_name(DataType t) { return dtype_name(t); }  // kiln's names are numpy's

AnyArray to_host_array(nb::handle obj, const std::string& what) {
    AnyArray a;
    if (!nb::try_cast(obj, a, true))
        throw Error(ErrorCode::kInvalidArgument,
                    what + ": expected a numpy array or a DLPack tensor (torch, cupy, jax), got " +
                        py_type_name(obj));
    int dev = a.device_type();
    if (dev != nb::device::cpu::value && dev != nb::device::cuda_host::value)
        throw Error(ErrorCode::kUnsupported,
                    what + " lives on a " + device_name(dev) +
                        " device, but this engine runs on the host: build it with device='cuda' (kiln with CUDA), "
                        "or copy the tensor to the host first, e.g. tensor.cpu() or cupy.asnumpy(tensor)");
    return a;
}

Tensor array_to_tensor(const AnyArray& a, const std::string& what, const DataType* expected) {
    nb::dlpack::dtype dt = a.dtype();
    DataType dtype;
    bool u16 = (dt.code == static_cast<uint8_t>(dc::UInt) || dt.code == static_cast<uint8_t>(dc::Int)) &&
               dt.bits == 16 && dt.lanes == 1;
    if (u16 && expected && (*expected == DataType::kBFloat16 || *expected == DataType::kFloat16))
        dtype = *expected;  // bit patterns from numpy, which has no bfloat16 of its own
    else
        dtype = dtype_from_dlpack(dt, what);
    Shape shape(a.ndim());
    for (size_t i = 0; i < a.ndim(); ++i) shape[i] = static_cast<int64_t>(a.shape(i));
    auto* data = static_cast<uint8_t*>(const_cast<void*>(a.data()));
    if (is_c_contiguous(a)) return Tensor::wrap(dtype, shape, data);
    Tensor t(dtype, shape);
    uint8_t* dst = static_cast<uint8_t*>(t.raw());
    if (t.numel() > 0) strided_copy(data, dst, a, 0, dtype_size(dtype));
    return t;
}

namespace {

template <typename... Framework>
nb::object hand_over(const Tensor& t, nb::dlpack::dtype dt) {
    auto* keep = new Tensor(t);  // shares the buffer; deleted when Python drops the array
    nb::capsule owner(keep, [](void* p) noexcept { delete static_cast<Tensor*>(p); });
    std::vector<size_t> shape(t.shape().begin(), t.shape().end());
    void* data = keep->raw() ? keep->raw() : static_cast<void*>(keep);  // zero-size tensors may have no buffer
    nb::ndarray<Framework...> arr(data, shape.size(), shape.data(), owner, nullptr, dt);
    return arr.cast();
}

}  // namespace

nb::object tensor_to_numpy(const Tensor& t) {
    nb::dlpack::dtype dt = dlpack_from_dtype(t.dtype());
    if (t.dtype() == DataType::kBFloat16) dt.code = static_cast<uint8_t>(dc::UInt);  // numpy has no bfloat16
    return hand_over<nb::numpy>(t, dt);
}

nb::object tensor_to_dlpack(const Tensor& t) { return hand_over<nb::array_api>(t, dlpack_from_dtype(t.dtype())); }

SymShape sym_shape_from_py(nb::handle seq, const std::string& what) {
    if (nb::isinstance<nb::str>(seq) || !PySequence_Check(seq.ptr()))
        throw Error(ErrorCode::kInvalidArgument, what + ": a shape is a sequence of int, str (symbolic) or None");
    SymShape dims;
    for (nb::handle d : nb::iter(seq)) {
        if (d.is_none()) {
            dims.emplace_back();
        } else if (nb::isinstance<nb::str>(d)) {
            dims.emplace_back(nb::cast<std::string>(d));
        } else if (PyIndex_Check(d.ptr())) {
            int64_t v = nb::cast<int64_t>(nb::handle(PyNumber_Index(d.ptr())));
            if (v < -1) throw Error(ErrorCode::kInvalidArgument, what + ": negative dimension " + std::to_string(v));
            dims.emplace_back(v);
        } else {
            throw Error(ErrorCode::kInvalidArgument,
                        what + ": a dimension must be an int, a str (symbolic) or None, got " + py_type_name(d));
        }
    }
    return dims;
}

Shape shape_from_py(nb::handle seq, const std::string& what) {
    Shape s;
    for (const Dim& d : sym_shape_from_py(seq, what)) {
        if (!d.is_static())
            throw Error(ErrorCode::kInvalidArgument, what + ": every dimension must be a non-negative int");
        s.push_back(d.value);
    }
    return s;
}

nb::tuple sym_shape_to_py(const SymShape& s) {
    nb::list out;
    for (const Dim& d : s) {
        if (d.is_static())
            out.append(nb::int_(d.value));
        else if (!d.symbol.empty())
            out.append(nb::str(d.symbol.c_str()));
        else
            out.append(nb::none());
    }
    return nb::tuple(out);
}

namespace {

bool is_int(nb::handle h) { return PyLong_Check(h.ptr()) || (PyIndex_Check(h.ptr()) && !nb::hasattr(h, "__dlpack__")); }
bool is_float(nb::handle h) { return PyFloat_Check(h.ptr()) || (!is_int(h) && nb::hasattr(h, "__float__") &&
                                                                 !nb::hasattr(h, "__dlpack__")); }

Attribute attribute_from_py(const std::string& name, nb::handle v) {
    std::string what = "attribute '" + name + "'";
    if (nb::isinstance<nb::str>(v)) return nb::cast<std::string>(v);
    if (is_int(v)) return nb::cast<int64_t>(nb::steal(PyNumber_Index(v.ptr())));
    if (is_float(v)) return static_cast<float>(PyFloat_AsDouble(v.ptr()));
    if (nb::isinstance<nb::list>(v) || nb::isinstance<nb::tuple>(v)) {
        bool all_int = true, all_num = true, all_str = true;
        for (nb::handle e : nb::iter(v)) {
            all_int &= is_int(e);
            all_num &= is_int(e) || is_float(e);
            all_str &= nb::isinstance<nb::str>(e);
        }
        if (all_int) {
            std::vector<int64_t> out;
            for (nb::handle e : nb::iter(v)) out.push_back(nb::cast<int64_t>(nb::steal(PyNumber_Index(e.ptr()))));
            return out;
        }
        if (all_num) {
            std::vector<float> out;
            for (nb::handle e : nb::iter(v)) out.push_back(static_cast<float>(PyFloat_AsDouble(e.ptr())));
            return out;
        }
        if (all_str) {
            std::vector<std::string> out;
            for (nb::handle e : nb::iter(v)) out.push_back(nb::cast<std::string>(e));
            return out;
        }
        throw Error(ErrorCode::kInvalidArgument, what + ": a list attribute must hold only ints, floats or strs");
    }
    if (nb::hasattr(v, "__dlpack__") || nb::hasattr(v, "__array_interface__"))
        return array_to_tensor(to_host_array(v, what), what).clone();
    throw Error(ErrorCode::kInvalidArgument,
                what + ": unsupported value of type " + py_type_name(v) +
                    " (use int, float, str, a list of those, or a numpy array)");
}

}  // namespace

AttributeMap attributes_from_py(nb::handle dict) {
    AttributeMap attrs;
    if (dict.is_none()) return attrs;
    if (!nb::isinstance<nb::dict>(dict))
        throw Error(ErrorCode::kInvalidArgument, "attributes must be a dict of name -> value");
    for (auto [k, v] : nb::borrow<nb::dict>(dict)) {
        std::string name = nb::cast<std::string>(k);
        attrs.set(name, attribute_from_py(name, v));
    }
    return attrs;
}

nb::object attribute_to_py(const Attribute& a) {
    return std::visit(
        [](const auto& v) -> nb::object {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, Tensor>)
                return tensor_to_numpy(v.clone());
            else
                return nb::cast(v);
        },
        a);
}

}  // namespace kiln::python
