#pragma once
// Conversions between Python objects and kiln's public types: arrays (numpy or any DLPack producer) <-> kiln::Tensor,
// Python shapes <-> kiln::SymShape, dicts <-> kiln::AttributeMap.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>

#include <string>
#include <vector>

#include "kiln/kiln.h"

namespace kiln::python {

namespace nb = nanobind;

/// Any array nanobind can import (read-only access): numpy arrays, DLPack producers (torch, cupy, jax), buffers.
using AnyArray = nb::ndarray<nb::ro>;

/// kiln's dtype for a DLPack dtype; throws Error(kInvalidArgument) naming `what` for dtypes kiln lacks.
DataType dtype_from_dlpack(nb::dlpack::dtype t, const std::string& what);
nb::dlpack::dtype dlpack_from_dtype(DataType t);
/// The numpy dtype name of a kiln dtype ("float32", "bfloat16", "bool", ...).
const char* numpy_dtype_name(DataType t);

/// True when the array is laid out row-major without gaps (any device).
bool is_c_contiguous(const AnyArray& a);

/// Converts `obj` (numpy array, DLPack tensor) to an array, or throws Error(kInvalidArgument) naming `what`.
/// Device arrays raise Error(kUnsupported): this build has only the CPU backend.
AnyArray to_host_array(nb::handle obj, const std::string& what);

/// A tensor over the array's memory when it is C-contiguous (zero copy: the array must outlive the tensor),
/// else a contiguous copy. `expected` reinterprets uint16 data as float16/bfloat16 when the engine wants that.
Tensor array_to_tensor(const AnyArray& a, const std::string& what, const DataType* expected = nullptr);

/// Hands the tensor's buffer to Python without copying: a numpy array (bfloat16 comes back as uint16; the Python
/// layer views it as ml_dtypes.bfloat16 where installed), or a framework-neutral DLPack ndarray.
nb::object tensor_to_numpy(const Tensor& t);
nb::object tensor_to_dlpack(const Tensor& t);

/// Shapes: Python sequences of int (static), str (named symbol) or None (unknown) <-> kiln::SymShape.
SymShape sym_shape_from_py(nb::handle seq, const std::string& what);
nb::tuple sym_shape_to_py(const SymShape& s);
Shape shape_from_py(nb::handle seq, const std::string& what);

/// Attributes: int, float, str, sequences of those, arrays (-> tensor attributes).
AttributeMap attributes_from_py(nb::handle dict);
nb::object attribute_to_py(const Attribute& a);

}  // namespace kiln::python
