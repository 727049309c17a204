// irexport-run: runs a serialized TensorRT engine on .npy inputs and writes its outputs as .npy files.
// Exit codes: 0 success, 2 bad usage or input (one "irexport-run: error: ..." line), 3 CUDA/TensorRT failure (or an output file could not be written).
#include "engine_runner.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <set>

namespace fs = std::filesystem;
using irexport::InputError;

namespace {

constexpr char kUsage[] = R"(usage: irexport-run --engine FILE [--plugins LIB]... [--profile N] --input NAME=FILE.npy...
                    --output-dir DIR [--verbose] [--allow-host-code]
       irexport-run --engine FILE [--plugins LIB]... [--profile N] --describe

Runs a serialized TensorRT engine on .npy inputs and writes each output to DIR/NAME.npy.
  --engine FILE       the serialized engine, e.g. an irexport model.engine
  --plugins LIB       a plugin library the engine needs (repeatable), e.g. libirexport_plugins.so
  --profile N         the optimization profile to run with (default 0). irexport's model.engine has
                      0 = prefill (an empty KV cache: every past_key_values.* input with 0 tokens,
                      e.g. [batch, kv_heads, 0, head_dim]) and 1 = decode (1 new token per sequence)
  --input NAME=FILE   an engine input from a .npy file (repeatable); bfloat16 inputs take float32 arrays
  --output-dir DIR    where the outputs are written (created if missing); bfloat16 outputs as float32
  --describe          print the profile, the engine's inputs and outputs (dtype, shape, the shapes
                      that profile accepts) and exit
  --verbose           also print TensorRT's info and verbose messages (default: warnings and errors)
  --allow-host-code   let a version-compatible engine run the plugin code serialized into it
                      (only for engine files you trust)
Prints one line per output: NAME DTYPE SHAPE. Exit codes: 0 success, 2 bad usage or input,
3 CUDA or TensorRT failure, or an output file could not be written.
)";

struct Options
{
    std::string engine;
    std::vector<std::string> plugins;
    std::map<std::string, std::string> inputs; // name -> .npy path
    std::string outputDir;
    int32_t profile{0};
    bool describe{false};
    bool verbose{false};
    bool allowHostCode{false};
};

// Digits only: no sign, no spaces, no trailing text (what stoi would let through); whether the engine has
// that profile is checked once it is loaded.
int32_t profileIndex(std::string const& text)
{
    bool const digits = !text.empty() && text.size() <= 9 &&
                        std::all_of(text.begin(), text.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    if (!digits)
        throw InputError("--profile takes a non-negative integer, got '" + text + "'");
    return static_cast<int32_t>(std::stol(text));
}

// nullopt: --help was printed.
std::optional<Options> parse(int argc, char** argv)
{
    Options o;
    bool profileGiven = false;
    for (int i = 1; i < argc; ++i)
    {
        std::string const arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc)
                throw InputError(arg + " needs a value (see --help)");
            return argv[++i];
        };
        if (arg == "--help" || arg == "-h")
        {
            std::fputs(kUsage, stdout);
            return std::nullopt;
        }
        else if (arg == "--engine")
            o.engine = value();
        else if (arg == "--plugins")
            o.plugins.push_back(value());
        else if (arg == "--input")
        {
            std::string const spec = value();
            size_t const eq = spec.find('=');
            if (eq == 0 || eq == std::string::npos || eq + 1 == spec.size())
                throw InputError("--input takes NAME=FILE.npy, got '" + spec + "'");
            if (!o.inputs.emplace(spec.substr(0, eq), spec.substr(eq + 1)).second)
                throw InputError("input '" + spec.substr(0, eq) + "' is given twice");
        }
        else if (arg == "--output-dir")
            o.outputDir = value();
        else if (arg == "--profile")
        {
            if (profileGiven)
                throw InputError("--profile is given twice");
            o.profile = profileIndex(value());
            profileGiven = true;
        }
        else if (arg == "--describe")
            o.describe = true;
        else if (arg == "--verbose")
            o.verbose = true;
        else if (arg == "--allow-host-code")
            o.allowHostCode = true;
        else
            throw InputError("unknown argument '" + arg + "' (see --help)");
    }
    if (o.engine.empty())
        throw InputError("--engine is required (see --help)");
    if (!o.describe && o.outputDir.empty())
        throw InputError("--output-dir is required (see --help)");
    return o;
}

// Tensor names may hold '/' or ':' (ONNX node outputs): anything but [A-Za-z0-9._-] becomes '_'.
std::string fileName(std::string name)
{
    for (char& c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
            c = '_';
    return name + ".npy";
}

// Written under a temporary name and renamed, so that DIR never holds a partial NAME.npy.
void writeOutput(fs::path const& path, irexport::NpyArray const& array)
{
    fs::path const tmp = path.parent_path() / ("." + path.filename().string() + ".tmp");
    try
    {
        irexport::writeNpy(tmp.string(), array);
        fs::rename(tmp, path);
    }
    catch (...)
    {
        std::error_code ignored;
        fs::remove(tmp, ignored);
        throw;
    }
}

int runWith(Options const& o, std::map<std::string, irexport::NpyArray> const& inputs);

int run(Options const& o)
{
    // Everything the user gave is checked before CUDA or TensorRT start.
    std::map<std::string, irexport::NpyArray> inputs;
    for (auto const& [name, path] : o.inputs)
        inputs.emplace(name, irexport::readNpy(path));
    if (o.describe)
        return runWith(o, inputs);
    bool const existed = fs::exists(o.outputDir);
    std::error_code ec;
    fs::create_directories(o.outputDir, ec);
    if (!fs::is_directory(o.outputDir))
        throw InputError(o.outputDir + ": cannot create the output directory" + (ec ? ": " + ec.message() : ""));
    try
    {
        return runWith(o, inputs);
    }
    catch (...)
    {
        if (!existed) // a failed run leaves no empty output directory behind
            fs::remove(o.outputDir, ec);
        throw;
    }
}

int runWith(Options const& o, std::map<std::string, irexport::NpyArray> const& inputs)
{

    irexport::EngineRunner runner(o.engine, o.plugins,
            o.verbose ? nvinfer1::ILogger::Severity::kVERBOSE : nvinfer1::ILogger::Severity::kWARNING, o.allowHostCode);
    runner.checkProfile(o.profile); // with the engine, before the inputs are compared with it
    if (o.describe)
    {
        std::printf("profile %d (the engine has %d optimization profile%s)\n", o.profile, runner.profileCount(),
                runner.profileCount() == 1 ? "" : "s");
        for (auto const& t : runner.tensors())
        {
            std::string line = std::string(t.isInput ? "input " : "output ") + t.name + " " + irexport::typeName(t.type) + " " +
                               irexport::shapeString(t.shape);
            if (t.isInput)
            {
                irexport::ShapeRange const& range = runner.profileRange(t.name, o.profile);
                line += " from " + irexport::shapeString(range.min) + " to " + irexport::shapeString(range.max);
            }
            std::puts(line.c_str());
        }
        return 0;
    }

    std::vector<std::pair<std::string, std::string>> files; // output name, file name; in the engine's order
    std::set<std::string> taken;
    for (auto const& t : runner.tensors())
    {
        if (t.isInput)
            continue;
        files.emplace_back(t.name, fileName(t.name));
        if (!taken.insert(files.back().second).second)
            throw InputError("two outputs would both be written to " + files.back().second);
    }

    std::map<std::string, irexport::NpyArray> const outputs = runner.run(inputs, o.profile);
    for (auto const& [name, file] : files)
    {
        irexport::NpyArray const& array = outputs.at(name);
        writeOutput(fs::path(o.outputDir) / file, array);
        std::printf("%s %s %s\n", name.c_str(), irexport::dtypeName(array.dtype), irexport::shapeString(array.shape).c_str());
    }
    return 0;
}

} // namespace

int main(int argc, char** argv)
{
    try
    {
        std::optional<Options> const options = parse(argc, argv);
        return options ? run(*options) : 0;
    }
    catch (InputError const& e)
    {
        std::fprintf(stderr, "irexport-run: error: %s\n", e.what());
        return 2;
    }
    catch (std::exception const& e) // CUDA or TensorRT failed: exit 3, as irexport's own TensorRT failures
    {
        std::fprintf(stderr, "irexport-run: error: %s\n", e.what());
        return 3;
    }
    catch (...)
    {
        std::fprintf(stderr, "irexport-run: error: unknown exception\n");
        return 3;
    }
}
