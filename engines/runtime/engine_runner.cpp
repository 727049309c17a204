#include "engine_runner.h"

#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <filesystem>

using nvinfer1::DataType;
using nvinfer1::Dims;

namespace irexport {
namespace {

struct EngineType
{
    DataType type;
    DType npyType;
    size_t size; // bytes per element on the device
    char const* name;
};

constexpr std::array<EngineType, 6> kEngineTypes{{
        {DataType::kFLOAT, DType::kFloat32, 4, "float32"},
        {DataType::kHALF, DType::kFloat16, 2, "float16"},
        {DataType::kBF16, DType::kFloat32, 2, "bfloat16"},
        {DataType::kINT32, DType::kInt32, 4, "int32"},
        {DataType::kINT64, DType::kInt64, 8, "int64"},
        {DataType::kBOOL, DType::kBool, 1, "bool"},
}};

EngineType const* engineType(DataType type)
{
    for (auto const& t : kEngineTypes)
        if (t.type == type)
            return &t;
    return nullptr;
}

void checkCuda(cudaError_t status, char const* what)
{
    if (status != cudaSuccess)
        throw std::runtime_error(std::string("CUDA error while ") + what + ": " + cudaGetErrorString(status));
}

using DevicePtr = std::unique_ptr<void, DeviceFree>;

DevicePtr deviceAlloc(size_t bytes)
{
    void* p = nullptr;
    checkCuda(cudaMalloc(&p, bytes), "allocating device memory");
    return DevicePtr(p);
}

struct StreamDestroy
{
    void operator()(cudaStream_t s) const { cudaStreamDestroy(s); }
};
using Stream = std::unique_ptr<CUstream_st, StreamDestroy>;

std::vector<int64_t> toVector(Dims const& dims) { return std::vector<int64_t>(dims.d, dims.d + std::max(dims.nbDims, 0)); }

Dims toDims(std::vector<int64_t> const& shape) // the caller checked the rank against the engine's
{
    Dims dims{};
    dims.nbDims = static_cast<int32_t>(shape.size());
    std::copy(shape.begin(), shape.end(), dims.d);
    return dims;
}

// bfloat16 is the upper half of a float32: round to nearest even, keep NaNs NaN.
std::vector<uint8_t> floatToBf16(std::vector<uint8_t> const& data)
{
    std::vector<uint8_t> out(data.size() / 2);
    for (size_t i = 0; i < data.size() / 4; ++i)
    {
        uint32_t u;
        std::memcpy(&u, &data[4 * i], 4);
        uint16_t const h = (u & 0x7FFFFFFFu) > 0x7F800000u ? uint16_t((u >> 16) | 0x40u) : uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
        std::memcpy(&out[2 * i], &h, 2);
    }
    return out;
}

std::vector<uint8_t> bf16ToFloat(std::vector<uint8_t> const& data)
{
    std::vector<uint8_t> out(data.size() * 2);
    for (size_t i = 0; i < data.size() / 2; ++i)
    {
        uint16_t h;
        std::memcpy(&h, &data[2 * i], 2);
        uint32_t const u = uint32_t(h) << 16;
        std::memcpy(&out[4 * i], &u, 4);
    }
    return out;
}

// The engine's inputs, for messages: "input_ids, attention_mask, ...".
std::string inputNames(std::vector<TensorDesc> const& tensors)
{
    std::string names;
    for (auto const& t : tensors)
        if (t.isInput)
            names += (names.empty() ? "" : ", ") + t.name;
    return names;
}

// Device memory for one output, allocated when TensorRT asks: data-dependent output shapes (routed token
// counts) are only known during enqueueV3. The shape starts as the context's and is updated by notifyShape.
class OutputAllocator : public nvinfer1::IOutputAllocator
{
public:
    explicit OutputAllocator(Dims const& shape) : mShape(shape) {}

    void* reallocateOutputAsync(
            char const* name, void* /*current*/, uint64_t size, uint64_t alignment, cudaStream_t /*stream*/) noexcept override
    {
        // TensorRT asks for a positive size even for an empty output; 1 byte at least anyway, since returning
        // nullptr means failure and cudaMalloc(0) may give it.
        uint64_t const bytes = std::max<uint64_t>(size, 1);
        if (bytes > mSize)
        {
            try
            {
                mMemory = deviceAlloc(bytes);
                mSize = bytes;
            }
            catch (std::exception const& e) // TensorRT fails enqueueV3 on nullptr; run() reports mError
            {
                mError = std::string("output '") + name + "': " + e.what();
                return nullptr;
            }
        }
        // cudaMalloc aligns to 256 bytes, which covers what TensorRT asks for; refuse anything stricter.
        if (reinterpret_cast<uintptr_t>(mMemory.get()) % alignment != 0)
        {
            mError = std::string("output '") + name + "': alignment " + std::to_string(alignment) + " not supported";
            return nullptr;
        }
        return mMemory.get();
    }

    void notifyShape(char const* /*name*/, Dims const& dims) noexcept override { mShape = dims; }

    void const* data() const { return mMemory.get(); }
    uint64_t size() const { return mSize; }
    Dims const& shape() const { return mShape; }
    std::string const& error() const { return mError; }

private:
    DevicePtr mMemory;
    uint64_t mSize{0};
    Dims mShape;
    std::string mError;
};

} // namespace

void DeviceFree::operator()(void* p) const noexcept { cudaFree(p); }

void Logger::log(Severity severity, char const* msg) noexcept
{
    static char const* const kNames[] = {"internal error", "error", "warning", "info", "verbose"};
    if (severity <= mThreshold) // lower values are more severe
        std::fprintf(stderr, "[TensorRT %s] %s\n", kNames[static_cast<int>(severity)], msg);
}

char const* typeName(DataType type)
{
    EngineType const* t = engineType(type);
    return t ? t->name : "unsupported";
}

// irexport's plugin library says which TensorRT major its headers were (ILogger and ILoggerFinder changed
// layout between 10 and 11); another major is refused before TensorRT calls into it. Other libraries pass.
static void checkPluginMajor(std::string const& lib)
{
    // kept mapped (NODELETE): a library that registers itself when loaded must not leave dangling creators;
    // TensorRT's loadLibrary then gets the same instance
    void* handle = dlopen(lib.c_str(), RTLD_LAZY | RTLD_LOCAL | RTLD_NODELETE);
    if (!handle)
        throw InputError(lib + ": cannot load this plugin library (" + dlerror() + ")");
    auto major = reinterpret_cast<int32_t (*)()>(dlsym(handle, "irexportPluginTensorRTMajor"));
    int32_t const built = major ? major() : NV_TENSORRT_MAJOR;
    if (built != NV_TENSORRT_MAJOR)
        throw InputError(lib + ": built for TensorRT " + std::to_string(built) + ", this runtime is TensorRT " +
                         std::to_string(NV_TENSORRT_MAJOR) + " (rebuild it against this TensorRT)");
}

EngineRunner::EngineRunner(std::string const& enginePath, std::vector<std::string> const& pluginLibraries,
        nvinfer1::ILogger::Severity severity, bool allowHostCode)
    : mLogger(severity)
{
    // The files first: a wrong path is reported before CUDA or TensorRT are asked for anything.
    for (auto const& lib : pluginLibraries)
        if (!std::filesystem::is_regular_file(lib))
            throw InputError(lib + ": plugin library not found");
    for (auto const& lib : pluginLibraries)
        checkPluginMajor(lib);
    std::vector<uint8_t> const blob = readFileBytes(enginePath);
    if (blob.empty())
        throw InputError(enginePath + ": the engine file is empty");

    // CUDA before TensorRT: without a usable GPU (no driver), the 11.4 lean runtime's createInferRuntime logs an
    // error and returns an invalid non-null pointer (seen with 11.1 headers), and the next call crashes.
    int devices = 0;
    if (cudaError_t const status = cudaGetDeviceCount(&devices); status != cudaSuccess)
        throw std::runtime_error(std::string("no usable CUDA GPU (cudaGetDeviceCount: ") + cudaGetErrorString(status) + ")");

    mRuntime.reset(nvinfer1::createInferRuntime(mLogger));
    if (!mRuntime)
        throw std::runtime_error("TensorRT could not create a runtime (see its messages above)");
    for (auto const& lib : pluginLibraries)
        if (!mRuntime->getPluginRegistry().loadLibrary(lib.c_str()))
            throw InputError(lib + ": TensorRT could not load this plugin library (see its messages above)");
    if (allowHostCode)
        mRuntime->setEngineHostCodeAllowed(true);
    mEngine.reset(mRuntime->deserializeCudaEngine(blob.data(), blob.size()));
    if (!mEngine)
        throw InputError(enginePath + ": not a TensorRT engine this runtime can load (truncated, built by another TensorRT version, or a "
                                      "plugin it needs is not loaded)");
    // The execution contexts come with each profile's first run (context()): one per profile, so switching
    // between prefill and decode never re-selects a profile, and all of them run on this one engine.
    mContexts.resize(static_cast<size_t>(mEngine->getNbOptimizationProfiles()));

    for (int32_t i = 0; i < mEngine->getNbIOTensors(); ++i)
    {
        char const* name = mEngine->getIOTensorName(i);
        TensorDesc t{name, mEngine->getTensorIOMode(name) == nvinfer1::TensorIOMode::kINPUT, mEngine->getTensorDataType(name),
                DType::kFloat32, toVector(mEngine->getTensorShape(name))};
        EngineType const* type = engineType(t.type);
        if (!type)
            throw InputError(enginePath + ": tensor '" + t.name + "' has TensorRT data type " + std::to_string(static_cast<int>(t.type)) +
                             ", which is not float32/float16/bfloat16/int32/int64/bool");
        t.npyType = type->npyType;
        // Host arrays are copied as they are: the engine's I/O must be plain row-major tensors in device memory.
        if (mEngine->getTensorFormat(name) != nvinfer1::TensorFormat::kLINEAR)
            throw InputError(enginePath + ": tensor '" + t.name + "' has a vectorized format; build with linear I/O");
        if (t.isInput && mEngine->isShapeInferenceIO(name))
            throw InputError(enginePath + ": input '" + t.name + "' is a shape tensor (read on the host): not supported");
        std::vector<ShapeRange> ranges;
        for (int32_t profile = 0; t.isInput && profile < profileCount(); ++profile)
        {
            // An engine without dynamic inputs reports no profile shapes: its own shape is the only one.
            auto profileShape = [&](nvinfer1::OptProfileSelector which) {
                Dims const d = mEngine->getProfileShape(name, profile, which);
                return d.nbDims == static_cast<int32_t>(t.shape.size()) ? toVector(d) : t.shape;
            };
            ranges.push_back({profileShape(nvinfer1::OptProfileSelector::kMIN), profileShape(nvinfer1::OptProfileSelector::kMAX)});
        }
        mTensors.push_back(std::move(t));
        mRanges.push_back(std::move(ranges));
    }
}

void EngineRunner::checkProfile(int32_t profile) const
{
    int32_t const profiles = profileCount();
    if (profile < 0 || profile >= profiles)
        throw InputError("profile " + std::to_string(profile) + ": the engine has " + std::to_string(profiles) + " optimization profile" +
                         (profiles == 1 ? "" : "s") + " (0.." + std::to_string(profiles - 1) + ")");
}

ShapeRange const& EngineRunner::profileRange(std::string const& input, int32_t profile) const
{
    checkProfile(profile);
    for (size_t i = 0; i < mTensors.size(); ++i)
        if (mTensors[i].isInput && mTensors[i].name == input)
            return mRanges[i][static_cast<size_t>(profile)];
    throw InputError("'" + input + "' is not an input of the engine (its inputs: " + inputNames(mTensors) + ")");
}

nvinfer1::IExecutionContext& EngineRunner::context(int32_t profile, cudaStream_t stream)
{
    std::unique_ptr<nvinfer1::IExecutionContext>& slot = mContexts[static_cast<size_t>(profile)];
    if (slot)
        return *slot;
    // The contexts never run at the same time (run() holds mRunMutex and synchronizes before it returns), so
    // they share one block of activation memory, the largest any profile needs, instead of one each
    // (kSTATIC). Each context keeps its own profile: TensorRT allows contexts in concurrent use only on
    // separate profiles, and a context that never switches never pays for the switch again.
    int64_t const bytes = mEngine->getDeviceMemorySizeV2();
    if (!mActivations && bytes > 0)
        mActivations = deviceAlloc(static_cast<size_t>(bytes));
    std::unique_ptr<nvinfer1::IExecutionContext> created(
            mEngine->createExecutionContext(nvinfer1::ExecutionContextAllocationStrategy::kUSER_MANAGED));
    if (!created)
        throw std::runtime_error("TensorRT could not create an execution context for optimization profile " + std::to_string(profile) +
                                 " (see its messages above)");
    created->setDeviceMemoryV2(mActivations.get(), bytes); // nullptr is allowed when the size is 0
    // A new context is on profile 0. Any other is selected once, here, before its first setInputShape
    // (TensorRT's order); the switch may enqueue copies, waited for so that no later stream can overtake them.
    if (profile != created->getOptimizationProfile())
    {
        if (!created->setOptimizationProfileAsync(profile, stream))
            throw std::runtime_error(
                    "TensorRT could not select optimization profile " + std::to_string(profile) + " (see its messages above)");
        checkCuda(cudaStreamSynchronize(stream), "selecting the optimization profile");
    }
    slot = std::move(created);
    return *slot;
}

void EngineRunner::validate(std::map<std::string, NpyArray> const& inputs, int32_t profile) const
{
    std::string const expected = inputNames(mTensors);
    for (auto const& entry : inputs)
    {
        auto const it =
                std::find_if(mTensors.begin(), mTensors.end(), [&](TensorDesc const& t) { return t.isInput && t.name == entry.first; });
        if (it == mTensors.end())
            throw InputError("unknown input '" + entry.first + "' (the engine's inputs: " + expected + ")");
    }
    for (size_t i = 0; i < mTensors.size(); ++i)
    {
        TensorDesc const& t = mTensors[i];
        if (!t.isInput)
            continue;
        ShapeRange const& range = mRanges[i][static_cast<size_t>(profile)];
        auto const it = inputs.find(t.name);
        if (it == inputs.end())
            throw InputError("missing input '" + t.name + "' (the engine's inputs: " + expected + ")");
        NpyArray const& a = it->second;
        if (a.dtype != t.npyType)
            throw InputError("input '" + t.name + "': dtype " + dtypeName(a.dtype) + ", the engine expects " + dtypeName(t.npyType) +
                             (t.type == DataType::kBF16 ? " (for its bfloat16 tensor)" : ""));
        if (a.data.size() != size_t(a.numel()) * dtypeSize(a.dtype))
            throw InputError("input '" + t.name + "': " + std::to_string(a.data.size()) + " bytes of data for shape " +
                             shapeString(a.shape) + " " + dtypeName(a.dtype));
        bool fits = a.shape.size() == range.min.size();
        for (size_t d = 0; fits && d < a.shape.size(); ++d)
            fits = range.min[d] <= a.shape[d] && a.shape[d] <= range.max[d];
        if (!fits)
            throw InputError("input '" + t.name + "': shape " + shapeString(a.shape) +
                             " is outside what the engine accepts with optimization profile " + std::to_string(profile) + " (from " +
                             shapeString(range.min) + " to " + shapeString(range.max) + ")");
    }
}

std::map<std::string, NpyArray> EngineRunner::run(std::map<std::string, NpyArray> const& inputs, int32_t profile)
{
    checkProfile(profile);
    validate(inputs, profile);
    std::lock_guard<std::mutex> const lock(mRunMutex);

    cudaStream_t rawStream = nullptr;
    checkCuda(cudaStreamCreate(&rawStream), "creating a stream");
    Stream const stream(rawStream);
    nvinfer1::IExecutionContext& ctx = context(profile, stream.get());

    std::vector<DevicePtr> inputMemory; // alive until the outputs are copied back
    std::vector<std::unique_ptr<OutputAllocator>> allocators;
    for (auto const& t : mTensors)
    {
        if (!t.isInput)
            continue;
        NpyArray const& a = inputs.at(t.name);
        if (!ctx.setInputShape(t.name.c_str(), toDims(a.shape)))
            throw std::runtime_error("input '" + t.name + "': TensorRT refused shape " + shapeString(a.shape));
        std::vector<uint8_t> const converted = t.type == DataType::kBF16 ? floatToBf16(a.data) : std::vector<uint8_t>();
        std::vector<uint8_t> const& host = t.type == DataType::kBF16 ? converted : a.data;
        // An empty input (a prefill's past_key_values.*, [batch, heads, 0, head_dim]) still needs a non-null
        // address (setTensorAddress: every input before enqueueV3), and cudaMalloc(0) may give nullptr.
        inputMemory.push_back(deviceAlloc(std::max<size_t>(host.size(), 1)));
        if (!host.empty())
            checkCuda(
                    cudaMemcpy(inputMemory.back().get(), host.data(), host.size(), cudaMemcpyHostToDevice), "copying an input to the GPU");
        if (!ctx.setTensorAddress(t.name.c_str(), inputMemory.back().get()))
            throw std::runtime_error("input '" + t.name + "': TensorRT refused its device address");
    }
    for (auto const& t : mTensors)
    {
        if (t.isInput)
            continue;
        allocators.push_back(std::make_unique<OutputAllocator>(ctx.getTensorShape(t.name.c_str())));
        if (!ctx.setOutputAllocator(t.name.c_str(), allocators.back().get()))
            throw std::runtime_error("output '" + t.name + "': TensorRT refused its output allocator");
    }

    if (!ctx.enqueueV3(stream.get()))
    {
        // whatever it launched finishes before the buffers are freed and another run uses the activations
        cudaStreamSynchronize(stream.get());
        std::string reasons;
        for (auto const& a : allocators)
            reasons += a->error().empty() ? "" : "; " + a->error();
        throw std::runtime_error("TensorRT could not run the engine (enqueueV3 failed; see its messages above)" + reasons);
    }
    checkCuda(cudaStreamSynchronize(stream.get()), "running the engine");

    std::map<std::string, NpyArray> outputs;
    auto allocator = allocators.begin();
    for (auto const& t : mTensors)
    {
        if (t.isInput)
            continue;
        OutputAllocator const& out = **allocator++;
        NpyArray array{t.npyType, toVector(out.shape()), {}};
        if (std::any_of(array.shape.begin(), array.shape.end(), [](int64_t d) { return d < 0; }))
            throw std::runtime_error("output '" + t.name + "': TensorRT did not report its shape");
        size_t const bytes = size_t(array.numel()) * engineType(t.type)->size;
        if (bytes > out.size())
            throw std::runtime_error("output '" + t.name + "': TensorRT gave no memory for shape " + shapeString(array.shape));
        std::vector<uint8_t> device(bytes);
        if (bytes > 0)
            checkCuda(cudaMemcpy(device.data(), out.data(), bytes, cudaMemcpyDeviceToHost), "copying an output from the GPU");
        array.data = t.type == DataType::kBF16 ? bf16ToFloat(device) : std::move(device);
        outputs.emplace(t.name, std::move(array));
    }
    return outputs;
}

} // namespace irexport
