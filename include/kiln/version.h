#pragma once
/// \file version.h  kiln's version; plans record it and refuse to load under another version.
namespace kiln {
inline constexpr int kVersionMajor = 0;
inline constexpr int kVersionMinor = 1;
inline constexpr int kVersionPatch = 0;
inline constexpr const char* kVersionString = "0.1.0";
}  // namespace kiln
