// Stand-ins for the TensorRT objects a plugin library talks to, built on the public headers only:
// symbolic dimension expressions and their builder (through the apiv:: classes of NvInferImpl.h),
// the plugin registry (with loadLibrary as TensorRT does it), a logger and a resource context.
// They let plugin_harness.cpp play TensorRT's role on a machine without TensorRT or a GPU.
#pragma once

#include <NvInferRuntime.h>

#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace irexport::standin {

using namespace nvinfer1;

// The values given to symbolic dimensions (batch, sequence, ...) for one of the profile's points.
enum class Point { kMin, kOpt, kMax };
using SymbolValues = std::map<std::string, int64_t>;

// A dimension expression: a constant, a named input dimension, an operation, or a size tensor.
// Two expressions are equal when their canonical texts are equal.
class Expr : public IDimensionExpr
{
public:
    enum class Kind { kConstant, kSymbol, kOperation, kSizeTensor };

    Expr(Kind kind, int64_t value, std::string symbol, DimensionOperation op, Expr const* a, Expr const* b, int32_t sizeOutput);
    ~Expr() noexcept override = default;

    Kind kind() const { return mState.kind; }
    std::string text() const;
    bool dependsOnSizeTensor() const;
    // The value at a profile point; a size tensor is 0 at kMin, its opt formula at kOpt, its upper bound at kMax.
    int64_t evaluate(SymbolValues const& values, Point point) const;

private:
    struct Impl : apiv::VDimensionExpr
    {
        Kind kind;
        int64_t value;
        std::string symbol;
        DimensionOperation op;
        Expr const* a; // operation operands; for a size tensor: a = opt, b = upper bound
        Expr const* b;
        int32_t sizeOutput;
        bool isConstant() const override { return kind == Kind::kConstant; }
        int64_t getConstantValue() const override
        {
            return kind == Kind::kConstant ? value : std::numeric_limits<int64_t>::min(); // as TensorRT's
        }
        bool isSizeTensor() const override { return kind == Kind::kSizeTensor; }
    } mState;
};

// IExprBuilder as TensorRT gives it to getOutputShapes: folds constants, records declared size tensors.
class ExprBuilder : public IExprBuilder
{
public:
    ExprBuilder();
    ~ExprBuilder() noexcept override = default;

    Expr const* symbol(std::string const& name);
    Expr const* constantExpr(int64_t value);
    std::map<int32_t, Expr const*> const& sizeTensors() const { return mState.sizeTensors; }
    std::vector<std::string> const& errors() const { return mState.errors; }

private:
    struct Impl : apiv::VExprBuilder
    {
        std::deque<std::unique_ptr<Expr>> pool;
        std::map<int32_t, Expr const*> sizeTensors; // output index -> its size-tensor expression
        std::vector<std::string> errors;
        Expr const* make(Expr::Kind kind, int64_t value, std::string symbol, DimensionOperation op, Expr const* a, Expr const* b,
                int32_t sizeOutput);
        IDimensionExpr const* constant(int64_t value) override;
        IDimensionExpr const* operation(DimensionOperation op, IDimensionExpr const& first, IDimensionExpr const& second) override;
        IDimensionExpr const* declareSizeTensor(int32_t outputIndex, IDimensionExpr const& opt, IDimensionExpr const& upper) override;
    } mState;
};

// Collects what plugins log; errors are shown with the failing check.
class Logger : public ILogger
{
public:
    void log(Severity severity, AsciiChar const* msg) noexcept override;
    std::vector<std::string> takeErrors();

private:
    std::vector<std::string> mErrors;
};

class LoggerFinder : public ILoggerFinder
{
public:
    explicit LoggerFinder(ILogger* logger) : mLogger(logger) {}
    ILogger* findLogger() noexcept override { return mLogger; }

private:
    ILogger* mLogger;
};

class ResourceContext : public IPluginResourceContext
{
public:
    IGpuAllocator* getGpuAllocator() const noexcept override { return nullptr; }
    IErrorRecorder* getErrorRecorder() const noexcept override { return nullptr; }
};

// The plugin registry. loadLibrary does what TensorRT's does for an IPluginV3 library (dlopen, then
// setLoggerFinder and getCreators, registering each creator under its own namespace; nullptr, with
// nothing registered, when a creator is registered already) and flags any registry call the library
// makes while it is being loaded (re-entrancy TensorRT does not promise to allow).
class Registry : public IPluginRegistry
{
public:
    explicit Registry(ILoggerFinder* finder) : mFinder(finder) {}
    ~Registry() noexcept override = default;

    struct Entry
    {
        IPluginCreatorInterface* creator;
        std::string name, version, ns;
        void* library; // the loadLibrary handle, or nullptr when registered directly
    };
    std::vector<Entry> const& entries() const { return mEntries; }
    int32_t registerCalls() const { return mRegisterCalls; }
    std::vector<std::string> const& problems() const { return mProblems; }
    std::string const& lastLoadError() const { return mLastLoadError; }

    void setErrorRecorder(IErrorRecorder*) noexcept override {}
    IErrorRecorder* getErrorRecorder() const noexcept override { return nullptr; }
    bool isParentSearchEnabled() const override { return true; }
    void setParentSearchEnabled(bool) override {}
    PluginLibraryHandle loadLibrary(AsciiChar const* pluginPath) noexcept override;
    void deregisterLibrary(PluginLibraryHandle handle) noexcept override;
    bool registerCreator(IPluginCreatorInterface& creator, AsciiChar const* const pluginNamespace) noexcept override;
    IPluginCreatorInterface* const* getAllCreators(int32_t* const numCreators) const noexcept override;
    IPluginCreatorInterface* getCreator(AsciiChar const* const pluginName, AsciiChar const* const pluginVersion,
            AsciiChar const* const pluginNamespace = "") noexcept override;
    bool deregisterCreator(IPluginCreatorInterface const& creator) noexcept override;
    IPluginResource* acquirePluginResource(AsciiChar const*, IPluginResource*) noexcept override { return nullptr; }
    int32_t releasePluginResource(AsciiChar const*) noexcept override { return -1; }
    IPluginCreatorInterface* const* getAllCreatorsRecursive(int32_t* const numCreators) noexcept override
    {
        return getAllCreators(numCreators);
    }

private:
    bool add(IPluginCreatorInterface& creator, char const* ns, void* library);

    ILoggerFinder* mFinder;
    std::vector<Entry> mEntries;
    mutable std::vector<IPluginCreatorInterface*> mAll;
    int32_t mRegisterCalls{0};
    bool mLoading{false};
    std::vector<std::string> mProblems;
    std::string mLastLoadError;
};

// The process-wide stand-ins (the stand-in libnvinfer's getPluginRegistry() / getLogger() return them,
// through irexportHarnessRegistry / irexportHarnessLogger).
Logger& logger();
Registry& registry();

} // namespace irexport::standin
