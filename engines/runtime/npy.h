// .npy arrays on the host: the exchange format of irexport-run (numpy writes and reads them; no TensorRT here).
// Supported: format versions 1.0 / 2.0 / 3.0, C order, little-endian |b1 <i4 <i8 <f2 <f4.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace irexport {

// Bad user input (a missing or malformed file, an input the engine does not accept, an output directory that
// cannot be made): irexport-run exits 2 on it, and 3 on every other error (CUDA, TensorRT, writing an output file).
struct InputError : std::runtime_error
{
    using std::runtime_error::runtime_error;
};

enum class DType { kBool, kInt32, kInt64, kFloat16, kFloat32 };

char const* dtypeName(DType dtype); // numpy's name: "bool", "int32", "int64", "float16", "float32"
size_t dtypeSize(DType dtype);

struct NpyArray
{
    DType dtype{DType::kFloat32};
    std::vector<int64_t> shape; // empty: a 0-d array (one element)
    std::vector<uint8_t> data;  // C order, little-endian, numel() * dtypeSize(dtype) bytes

    int64_t numel() const;
};

std::string shapeString(std::vector<int64_t> const& shape); // "[1,8,257]", "[]" for 0-d

// The whole file (also used for engine files); throws InputError "PATH: reason" when it cannot be read.
std::vector<uint8_t> readFileBytes(std::string const& path);
// Throws InputError "PATH: reason" for a missing, truncated or unsupported file.
NpyArray readNpy(std::string const& path);
// Writes format version 1.0; throws std::runtime_error "PATH: reason" on I/O errors.
void writeNpy(std::string const& path, NpyArray const& array);

} // namespace irexport
