"""OpenVINO: the conversion to IR and the native C++ runner."""
