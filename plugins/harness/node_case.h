// The harness's input: one case per routing node of an ONNX export (irexport/ops/plugin_cases.py writes
// them), and the plugin fields built from a node exactly as onnx-tensorrt's plugin importer builds them.
#pragma once

#include <NvInferRuntime.h>

#include <string>
#include <vector>

namespace irexport::harness {

using namespace nvinfer1;

//   case <TAB> label <TAB> op_type <TAB> plugin_version <TAB> plugin_namespace
//   attr <TAB> name <TAB> FLOAT|INT|STRING|FLOATS|INTS <TAB> value (lists comma-separated)
//   input|output <TAB> name (empty: an omitted output) <TAB> ONNX element type <TAB> dims (comma-separated
//                 ints or symbols; empty for 0-d; ? for an unknown rank)
//   end
struct Port
{
    std::string name, dtype;
    bool rankKnown{true};
    std::vector<std::string> dims;
};

struct Attr
{
    std::string name, type, value;
};

struct Case
{
    std::string label, op, version, ns;
    std::vector<Attr> attrs;
    std::vector<Port> inputs, outputs;
};

std::vector<std::string> split(std::string const& s, char sep);
bool isInteger(std::string const& s);
// Throws std::runtime_error naming the file and line.
std::vector<Case> readCases(std::string const& path);

// ONNX element type name <-> TensorRT DataType (false: a type this harness does not know).
bool dataType(std::string const& onnx, DataType& out);
char const* typeName(DataType t);
size_t dataTypeSize(DataType t);

// PluginFields with their own storage.
struct Fields
{
    std::vector<std::string> names;
    std::vector<std::vector<char>> data;
    std::vector<PluginField> fields;
    PluginFieldCollection collection{};

    void add(std::string name, void const* bytes, size_t size);
    void finish(std::vector<std::pair<PluginFieldType, int32_t>> const& kinds);
};

// A deep copy of a PluginFieldCollection: what TensorRT keeps when it serializes a plugin.
struct FieldCopy
{
    Fields store;
    std::vector<std::pair<PluginFieldType, int32_t>> kinds;

    explicit FieldCopy(PluginFieldCollection const* fc);
    bool operator==(FieldCopy const& o) const { return store.names == o.store.names && store.data == o.store.data && kinds == o.kinds; }
};

// Only the creator's getFieldNames() are looked up on the node; FLOAT -> kFLOAT32 x1, INT -> kINT32 x1,
// STRING -> kCHAR with its terminating NUL, FLOATS / INTS -> kFLOAT32 / kINT32 x n, STRINGS -> kCHAR
// (each NUL-terminated, concatenated; TENSOR attributes are not modelled and reported). Other attributes
// (plugin_version, plugin_namespace) are not passed. Unusable attribute types are added to fails.
Fields fieldsFromNode(PluginFieldCollection const* names, Case const& c, std::vector<std::string>& fails);

// Reads the cases and loads the plugin library through the stand-in registry's loadLibrary; false after
// printing one error line (plugin_harness.cpp).
bool readCasesAndLoad(char const* library, char const* casesPath, std::vector<Case>& cases);

template <typename T>
T* capability(IPluginV3* plugin, PluginCapabilityType type)
{
    return plugin ? static_cast<T*>(plugin->getCapabilityInterface(type)) : nullptr;
}

} // namespace irexport::harness
