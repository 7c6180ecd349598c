// Errors a user can cause, raised from C++ as the matching fff.errors class in Python.
#pragma once

#include <stdexcept>
#include <string>

namespace fff {

class Error : public std::runtime_error {
 public:
  // Each kind names a class in fff/errors.py; module.cpp maps one to the other.
  enum class Kind { Usage, ModelFile, Shape, Device, Compile };
  Error(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

// OpenVINO's messages carry source-file breadcrumbs ("Exception from src/...:97:") and
// repeat themselves across layers; keep only the lines that say what went wrong.
std::string concise_reason(const std::exception& e);

}  // namespace fff
