#pragma once
/// \file attribute.h
/// Typed node attributes (the ONNX attribute kinds kiln uses) with defaulted, typed access.
///
/// Example usage:
/// \code
///   kiln::AttributeMap attrs;
///   attrs.set("axis", int64_t{1});
///   int64_t axis = attrs.get_int("axis", 0);
/// \endcode
#include <map>
#include <string>
#include <variant>
#include <vector>

#include "kiln/tensor.h"

namespace kiln {

using Attribute = std::variant<int64_t, float, std::string, std::vector<int64_t>, std::vector<float>,
                               std::vector<std::string>, Tensor>;

const char* attribute_kind_name(const Attribute& a);
/// Printed value: 3, 1.5, "nearest", [1,1], tensor<float32[4]>.
std::string attribute_str(const Attribute& a);

class AttributeMap {
public:
    bool has(const std::string& name) const { return values_.count(name) != 0; }
    void set(const std::string& name, Attribute value) { values_[name] = std::move(value); }
    void erase(const std::string& name) { values_.erase(name); }

    // Typed getters; a present attribute of the wrong kind throws Error(kInvalidModel) naming it.
    int64_t get_int(const std::string& name, int64_t def) const;
    float get_float(const std::string& name, float def) const;
    std::string get_string(const std::string& name, const std::string& def) const;
    std::vector<int64_t> get_ints(const std::string& name, const std::vector<int64_t>& def = {}) const;
    std::vector<float> get_floats(const std::string& name, const std::vector<float>& def = {}) const;
    std::vector<std::string> get_strings(const std::string& name) const;
    const Tensor* get_tensor(const std::string& name) const;
    /// Required int/ints; throws naming the attribute when missing.
    int64_t require_int(const std::string& name) const;
    std::vector<int64_t> require_ints(const std::string& name) const;

    const std::map<std::string, Attribute>& items() const { return values_; }
    bool operator==(const AttributeMap& o) const;

private:
    std::map<std::string, Attribute> values_;
};

}  // namespace kiln
