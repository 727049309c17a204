// The harness's input: one case per routing node of an ONNX export (irexport/ops/plugin_cases.py writes
// them); the plugin fields built from a node exactly as onnx-tensorrt's plugin importer builds them; and
// the plugins TensorRT makes of a node: at build time (the parser) and in an engine (serialized fields,
// kRUNTIME, attachToContext).
#pragma once

#include "trt_standin.h"

#include <NvInferRuntime.h>

#include <memory>
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

// PluginFields with their own storage; built from a node, or a deep copy of a PluginFieldCollection
// (what TensorRT keeps when it serializes a plugin).
class Fields
{
public:
    Fields() = default;
    explicit Fields(PluginFieldCollection const* fc);

    void add(std::string name, PluginFieldType type, int32_t length, void const* bytes, size_t size);
    PluginFieldCollection const* collection(); // valid until the next add
    bool operator==(Fields const& o) const { return mItems == o.mItems; }

private:
    struct Item
    {
        std::string name;
        PluginFieldType type;
        int32_t length;
        std::vector<char> bytes;
        bool operator==(Item const& o) const { return name == o.name && type == o.type && length == o.length && bytes == o.bytes; }
    };
    std::vector<Item> mItems;
    std::vector<PluginField> mFields;
    PluginFieldCollection mCollection{};
};

// Only the creator's getFieldNames() are looked up on the node; FLOAT -> kFLOAT32 x1, INT -> kINT32 x1,
// STRING -> kCHAR with its terminating NUL, FLOATS / INTS -> kFLOAT32 / kINT32 x n, STRINGS -> kCHAR
// (each NUL-terminated, concatenated; TENSOR attributes are not modelled and reported). Other attributes
// (plugin_version, plugin_namespace) are not passed. Unusable attribute types are added to fails.
Fields fieldsFromNode(PluginFieldCollection const* names, Case const& c, std::vector<std::string>& fails);

// Reads the cases and loads the plugin library through the stand-in registry's loadLibrary; false after
// printing one error line.
bool readCasesAndLoad(char const* library, char const* casesPath, std::vector<Case>& cases);

template <typename T>
T* capability(IPluginV3* plugin, PluginCapabilityType type)
{
    return plugin ? static_cast<T*>(plugin->getCapabilityInterface(type)) : nullptr;
}

// A node's plugin as the ONNX parser makes it: the creator found by (op, version, namespace), the
// fields from the node, createPlugin(kBUILD).
struct NodePlugin
{
    IPluginCreatorV3One* creator{nullptr};
    std::unique_ptr<IPluginV3> plugin;
    IPluginV3OneCore* core{nullptr};
    IPluginV3OneBuild* build{nullptr};
    IPluginV3OneRuntime* runtime{nullptr};
};

// Empty on success, else what failed (field problems go to fails and do not stop it).
std::string makeNodePlugin(Case const& c, NodePlugin& out, std::vector<std::string>& fails);

// What an engine runs: createPlugin(kRUNTIME) from a copy of the fields the build plugin serialized,
// then attachToContext.
struct EnginePlugin
{
    standin::ResourceContext context; // first: outlives the plugins attached to it
    Fields serialized;
    std::unique_ptr<IPluginV3> restored, attached;
    IPluginV3OneRuntime* restoredRuntime{nullptr};
    IPluginV3OneRuntime* runtime{nullptr};
};

// Empty on success, else what failed.
std::string makeEnginePlugin(NodePlugin const& node, std::string const& label, EnginePlugin& out);

} // namespace irexport::harness
