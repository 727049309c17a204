#include "node_case.h"

#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>
#include <stdexcept>

namespace irexport::harness {

std::vector<std::string> split(std::string const& s, char sep)
{
    std::vector<std::string> out;
    std::string item;
    std::istringstream in(s);
    while (std::getline(in, item, sep))
        out.push_back(item);
    if (!s.empty() && s.back() == sep)
        out.emplace_back();
    return out;
}

bool isInteger(std::string const& s)
{
    if (s.empty())
        return false;
    size_t i = s[0] == '-' ? 1 : 0;
    return i < s.size() && s.find_first_not_of("0123456789", i) == std::string::npos;
}

std::vector<Case> readCases(std::string const& path)
{
    std::ifstream in(path);
    if (!in)
        throw std::runtime_error(path + ": cannot read");
    std::vector<Case> cases;
    Case* cur = nullptr;
    std::string line;
    int lineNo = 0;
    while (std::getline(in, line))
    {
        ++lineNo;
        if (line.empty())
            continue;
        auto f = split(line, '\t');
        auto bad = [&](char const* why) { return std::runtime_error(path + ":" + std::to_string(lineNo) + ": " + why); };
        if (f[0] == "case")
        {
            if (f.size() != 5)
                throw bad("a case line has 5 fields");
            cases.push_back(Case{f[1], f[2], f[3], f[4], {}, {}, {}});
            cur = &cases.back();
        }
        else if (f[0] == "end")
            cur = nullptr;
        else if (!cur)
            throw bad("line outside a case");
        else if (f[0] == "attr" && f.size() == 4)
            cur->attrs.push_back(Attr{f[1], f[2], f[3]});
        else if ((f[0] == "input" || f[0] == "output") && f.size() == 4)
        {
            Port p{f[1], f[2], f[3] != "?", {}};
            if (p.rankKnown && !f[3].empty())
                p.dims = split(f[3], ',');
            (f[0] == "input" ? cur->inputs : cur->outputs).push_back(p);
        }
        else
            throw bad("unknown or malformed line");
    }
    if (cur)
        throw std::runtime_error(path + ": the last case has no end line");
    return cases;
}

bool dataType(std::string const& onnx, DataType& out)
{
    static std::map<std::string, DataType> const types{{"FLOAT", DataType::kFLOAT}, {"FLOAT16", DataType::kHALF},
            {"BFLOAT16", DataType::kBF16}, {"INT8", DataType::kINT8}, {"INT32", DataType::kINT32}, {"INT64", DataType::kINT64},
            {"BOOL", DataType::kBOOL}, {"UINT8", DataType::kUINT8}};
    auto it = types.find(onnx);
    if (it == types.end())
        return false;
    out = it->second;
    return true;
}

char const* typeName(DataType t)
{
    switch (t)
    {
    case DataType::kFLOAT: return "FLOAT";
    case DataType::kHALF: return "FLOAT16";
    case DataType::kBF16: return "BFLOAT16";
    case DataType::kINT8: return "INT8";
    case DataType::kINT32: return "INT32";
    case DataType::kINT64: return "INT64";
    case DataType::kBOOL: return "BOOL";
    case DataType::kUINT8: return "UINT8";
    default: return "other";
    }
}

size_t dataTypeSize(DataType t)
{
    switch (t)
    {
    case DataType::kFLOAT:
    case DataType::kINT32: return 4;
    case DataType::kHALF:
    case DataType::kBF16: return 2;
    case DataType::kINT64: return 8;
    case DataType::kINT8:
    case DataType::kBOOL:
    case DataType::kUINT8: return 1;
    default: return 0;
    }
}

namespace {

size_t fieldElementSize(PluginFieldType t)
{
    switch (t)
    {
    case PluginFieldType::kFLOAT16: return 2;
    case PluginFieldType::kFLOAT32: return 4;
    case PluginFieldType::kFLOAT64: return 8;
    case PluginFieldType::kINT8: return 1;
    case PluginFieldType::kINT16: return 2;
    case PluginFieldType::kINT32: return 4;
    case PluginFieldType::kCHAR: return 1;
    case PluginFieldType::kBF16: return 2;
    case PluginFieldType::kINT64: return 8;
    default: return 0;
    }
}

} // namespace

Fields::Fields(PluginFieldCollection const* fc)
{
    for (int32_t i = 0; fc && i < fc->nbFields; ++i)
    {
        PluginField const& f = fc->fields[i];
        size_t const size = fieldElementSize(f.type) * static_cast<size_t>(std::max(f.length, 0));
        add(f.name ? f.name : "", f.type, f.length, f.data, f.data ? size : 0);
    }
}

void Fields::add(std::string name, PluginFieldType type, int32_t length, void const* bytes, size_t size)
{
    auto const* begin = static_cast<char const*>(bytes);
    mItems.push_back(Item{std::move(name), type, length, std::vector<char>(begin, begin + size)});
}

PluginFieldCollection const* Fields::collection()
{
    mFields.clear();
    for (auto const& item : mItems)
        mFields.emplace_back(item.name.c_str(), item.bytes.data(), item.type, item.length);
    mCollection.nbFields = static_cast<int32_t>(mFields.size());
    mCollection.fields = mFields.data();
    return &mCollection;
}

Fields fieldsFromNode(PluginFieldCollection const* names, Case const& c, std::vector<std::string>& fails)
{
    Fields out;
    for (int32_t i = 0; names && i < names->nbFields; ++i)
    {
        std::string const name = names->fields[i].name ? names->fields[i].name : "";
        auto it = std::find_if(c.attrs.begin(), c.attrs.end(), [&](Attr const& a) { return a.name == name; });
        if (it == c.attrs.end())
            continue; // onnx-tensorrt warns and leaves it to the creator
        if (it->type == "FLOAT" || it->type == "FLOATS")
        {
            std::vector<float> v;
            for (auto const& s : split(it->value, ','))
                v.push_back(std::stof(s));
            out.add(name, PluginFieldType::kFLOAT32, int32_t(v.size()), v.data(), v.size() * sizeof(float));
        }
        else if (it->type == "INT" || it->type == "INTS")
        {
            std::vector<int32_t> v;
            for (auto const& s : split(it->value, ','))
                v.push_back(static_cast<int32_t>(std::stoll(s)));
            out.add(name, PluginFieldType::kINT32, int32_t(v.size()), v.data(), v.size() * sizeof(int32_t));
        }
        else if (it->type == "STRING" || it->type == "STRINGS") // each NUL-terminated, concatenated
        {
            std::string joined;
            for (auto const& item : it->type == "STRING" ? std::vector<std::string>{it->value} : split(it->value, ','))
                joined += item + '\0';
            out.add(name, PluginFieldType::kCHAR, int32_t(joined.size()), joined.data(), joined.size());
        }
        else
            fails.push_back("attribute '" + name + "' has type " + it->type + ", which the ONNX parser cannot pass to a plugin");
    }
    return out;
}

bool readCasesAndLoad(char const* library, char const* casesPath, std::vector<Case>& cases)
{
    try
    {
        cases = readCases(casesPath);
    }
    catch (std::exception const& e)
    {
        std::cerr << "irexport-plugin-harness: error: " << e.what() << "\n";
        return false;
    }
    if (cases.empty())
    {
        std::cerr << "irexport-plugin-harness: error: " << casesPath << ": no cases\n";
        return false;
    }
    if (!standin::registry().loadLibrary(library))
    {
        std::cerr << "irexport-plugin-harness: error: " << library << ": loadLibrary failed: " << standin::registry().lastLoadError()
                  << "\n";
        return false;
    }
    return true;
}

std::string makeNodePlugin(Case const& c, NodePlugin& out, std::vector<std::string>& fails)
{
    IPluginCreatorInterface* found = standin::registry().getCreator(c.op.c_str(), c.version.c_str(), c.ns.c_str());
    if (!found)
        return "no creator registered for (" + c.op + ", version " + c.version + ", namespace '" + c.ns +
               "'): the parser would inline the function body or fail with 'Plugin not found'";
    out.creator = static_cast<IPluginCreatorV3One*>(found); // the registry admits V3One creators only
    Fields fields = fieldsFromNode(out.creator->getFieldNames(), c, fails);
    out.plugin.reset(out.creator->createPlugin(c.label.c_str(), fields.collection(), TensorRTPhase::kBUILD));
    if (!out.plugin)
        return "createPlugin(kBUILD) returned null";
    out.core = capability<IPluginV3OneCore>(out.plugin.get(), PluginCapabilityType::kCORE);
    out.build = capability<IPluginV3OneBuild>(out.plugin.get(), PluginCapabilityType::kBUILD);
    out.runtime = capability<IPluginV3OneRuntime>(out.plugin.get(), PluginCapabilityType::kRUNTIME);
    return out.core && out.build && out.runtime ? "" : "getCapabilityInterface(kCORE / kBUILD / kRUNTIME) returned null";
}

std::string makeEnginePlugin(NodePlugin const& node, std::string const& label, EnginePlugin& out)
{
    out.serialized = Fields(node.runtime->getFieldsToSerialize());
    out.restored.reset(node.creator->createPlugin(label.c_str(), out.serialized.collection(), TensorRTPhase::kRUNTIME));
    out.restoredRuntime = capability<IPluginV3OneRuntime>(out.restored.get(), PluginCapabilityType::kRUNTIME);
    if (!out.restoredRuntime)
        return "createPlugin(kRUNTIME) from the serialized fields failed";
    out.attached.reset(out.restoredRuntime->attachToContext(&out.context));
    out.runtime = capability<IPluginV3OneRuntime>(out.attached.get(), PluginCapabilityType::kRUNTIME);
    return out.runtime ? "" : "attachToContext returned null";
}

} // namespace irexport::harness
