#include "npy.h"

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <regex>

// .npy data is little-endian and is copied as raw bytes.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "irexport's .npy code assumes a little-endian host");

namespace irexport {
namespace {

struct DTypeInfo
{
    DType dtype;
    char const* descr; // numpy's descr as written by np.save on a little-endian machine
    char const* name;
    size_t size;
};

constexpr std::array<DTypeInfo, 5> kDTypes{{
        // in DType order
        {DType::kBool, "|b1", "bool", 1},
        {DType::kInt32, "<i4", "int32", 4},
        {DType::kInt64, "<i8", "int64", 8},
        {DType::kFloat16, "<f2", "float16", 2},
        {DType::kFloat32, "<f4", "float32", 4},
}};

DTypeInfo const& info(DType dtype) { return kDTypes[static_cast<size_t>(dtype)]; }

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;

using File = std::unique_ptr<FILE, int (*)(FILE*)>;

// The inside of the header's shape tuple: "2, 3", "5," or "" (0-d).
std::vector<int64_t> parseShape(std::string const& path, std::string const& tuple)
{
    static std::regex const kTuple{R"(\s*(\d+\s*,\s*)*(\d+\s*,?\s*)?)"};
    static std::regex const kDim{R"(\d+)"};
    if (!std::regex_match(tuple, kTuple))
        throw InputError(path + ": malformed shape (" + tuple + ") in the header");
    std::vector<int64_t> shape;
    for (auto it = std::sregex_iterator(tuple.begin(), tuple.end(), kDim); it != std::sregex_iterator(); ++it)
    {
        errno = 0;
        shape.push_back(std::strtoll(it->str().c_str(), nullptr, 10));
        if (errno == ERANGE)
            throw InputError(path + ": shape (" + tuple + ") has a dimension out of range");
    }
    return shape;
}

} // namespace

char const* dtypeName(DType dtype) { return info(dtype).name; }

size_t dtypeSize(DType dtype) { return info(dtype).size; }

int64_t NpyArray::numel() const
{
    int64_t n = 1;
    for (int64_t d : shape)
        n *= d;
    return n;
}

std::string shapeString(std::vector<int64_t> const& shape)
{
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i)
        s += (i ? "," : "") + std::to_string(shape[i]);
    return s + "]";
}

std::vector<uint8_t> readFileBytes(std::string const& path)
{
    File f(std::fopen(path.c_str(), "rb"), std::fclose);
    if (!f)
        throw InputError(path + ": cannot open: " + std::strerror(errno));
    std::vector<uint8_t> bytes;
    std::error_code ec;
    if (auto const size = std::filesystem::file_size(path, ec); !ec)
        bytes.reserve(size); // engines can be gigabytes
    std::array<uint8_t, 1 << 16> chunk;
    size_t n;
    while ((n = std::fread(chunk.data(), 1, chunk.size(), f.get())) > 0)
        bytes.insert(bytes.end(), chunk.begin(), chunk.begin() + n);
    if (std::ferror(f.get())) // e.g. a directory
        throw InputError(path + ": cannot read: " + std::strerror(errno));
    return bytes;
}

NpyArray readNpy(std::string const& path)
{
    std::vector<uint8_t> const bytes = readFileBytes(path);
    if (bytes.size() < kMagicSize + 2 || std::memcmp(bytes.data(), kMagic, kMagicSize) != 0)
        throw InputError(path + ": not a .npy file (no \\x93NUMPY magic)");
    int const major = bytes[6], minor = bytes[7];
    if (major < 1 || major > 3 || minor != 0)
        throw InputError(path + ": unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                         " (supported: 1.0, 2.0, 3.0)");
    // 1.0: 2-byte header length; 2.0 and 3.0 (UTF-8 header): 4 bytes; little-endian.
    size_t const lengthSize = major == 1 ? 2 : 4;
    size_t const headerStart = kMagicSize + 2 + lengthSize;
    if (bytes.size() < headerStart)
        throw InputError(path + ": truncated header");
    size_t headerSize = 0;
    for (size_t i = 0; i < lengthSize; ++i)
        headerSize |= size_t(bytes[kMagicSize + 2 + i]) << (8 * i);
    if (bytes.size() - headerStart < headerSize)
        throw InputError(path + ": truncated header");
    std::string const header(bytes.begin() + headerStart, bytes.begin() + headerStart + headerSize);

    // The header is a Python dict literal written by numpy: {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
    std::smatch m;
    static std::regex const kDescr{R"(['"]descr['"]\s*:\s*['"]([^'"]*)['"])"};
    static std::regex const kFortran{R"(['"]fortran_order['"]\s*:\s*(True|False))"};
    static std::regex const kShape{R"(['"]shape['"]\s*:\s*\(([^)]*)\))"};
    if (!std::regex_search(header, m, kDescr))
        throw InputError(path + ": malformed header (no 'descr')");
    std::string const descr = m[1];
    if (!std::regex_search(header, m, kFortran))
        throw InputError(path + ": malformed header (no 'fortran_order')");
    if (m[1] == "True")
        throw InputError(path + ": Fortran-order arrays are not supported (save a C-contiguous array)");
    if (!std::regex_search(header, m, kShape))
        throw InputError(path + ": malformed header (no 'shape')");

    NpyArray array;
    array.shape = parseShape(path, m[1]);
    DTypeInfo const* dtype = nullptr;
    for (auto const& d : kDTypes)
        if (descr == d.descr)
            dtype = &d;
    if (!dtype)
        throw InputError(path + ": unsupported dtype '" + descr + "' (supported: |b1 <i4 <i8 <f2 <f4)");
    array.dtype = dtype->dtype;

    size_t const available = bytes.size() - headerStart - headerSize;
    size_t needed = dtype->size; // checked at each step: a forged shape must not overflow
    for (int64_t d : array.shape)
    {
        if (d != 0 && needed > std::numeric_limits<size_t>::max() / size_t(d))
            throw InputError(path + ": shape " + shapeString(array.shape) + " is too large");
        needed *= size_t(d);
    }
    if (available < needed)
        throw InputError(path + ": truncated data (shape " + shapeString(array.shape) + " " + dtype->name + " needs " +
                         std::to_string(needed) + " bytes, the file has " + std::to_string(available) + ")");
    auto const data = bytes.begin() + headerStart + headerSize;
    array.data.assign(data, data + needed);
    return array;
}

void writeNpy(std::string const& path, NpyArray const& array)
{
    std::string shape = "(";
    for (size_t i = 0; i < array.shape.size(); ++i)
        shape += (i ? ", " : "") + std::to_string(array.shape[i]);
    shape += array.shape.size() == 1 ? ",)" : ")";
    std::string header = std::string("{'descr': '") + info(array.dtype).descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
    // Pad with spaces and end with '\n' so that the data starts at a multiple of 64 bytes, as numpy does.
    // Version 1.0 (2-byte header length) holds any shape TensorRT can have (at most 8 dimensions).
    size_t const prefix = kMagicSize + 4;
    header.append(63 - (prefix + header.size()) % 64, ' ');
    header += '\n';
    if (header.size() > 0xFFFF)
        throw std::runtime_error(path + ": shape " + shapeString(array.shape) + " is too long for a .npy header");

    std::vector<uint8_t> out(kMagic, kMagic + kMagicSize);
    out.insert(out.end(), {1, 0, uint8_t(header.size()), uint8_t(header.size() >> 8)});
    out.insert(out.end(), header.begin(), header.end());
    out.insert(out.end(), array.data.begin(), array.data.end());

    File f(std::fopen(path.c_str(), "wb"), std::fclose);
    if (!f)
        throw std::runtime_error(path + ": cannot write: " + std::strerror(errno));
    if (std::fwrite(out.data(), 1, out.size(), f.get()) != out.size() || std::fclose(f.release()) != 0)
        throw std::runtime_error(path + ": cannot write: " + std::strerror(errno));
}

} // namespace irexport
