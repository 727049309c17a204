#include "trt_standin.h"

#include <dlfcn.h>

#include <algorithm>
#include <cstring>

namespace irexport::standin {

namespace {

char const* opName(DimensionOperation op)
{
    switch (op)
    {
    case DimensionOperation::kSUM: return "sum";
    case DimensionOperation::kPROD: return "prod";
    case DimensionOperation::kMAX: return "max";
    case DimensionOperation::kMIN: return "min";
    case DimensionOperation::kSUB: return "sub";
    case DimensionOperation::kEQUAL: return "equal";
    case DimensionOperation::kLESS: return "less";
    case DimensionOperation::kFLOOR_DIV: return "floor_div";
    case DimensionOperation::kCEIL_DIV: return "ceil_div";
    }
    return "?";
}

int64_t apply(DimensionOperation op, int64_t a, int64_t b)
{
    auto floorDiv = [](int64_t x, int64_t y) { return y == 0 ? 0 : (x / y - ((x % y != 0) && ((x < 0) != (y < 0)))); };
    switch (op)
    {
    case DimensionOperation::kSUM: return a + b;
    case DimensionOperation::kPROD: return a * b;
    case DimensionOperation::kMAX: return std::max(a, b);
    case DimensionOperation::kMIN: return std::min(a, b);
    case DimensionOperation::kSUB: return a - b;
    case DimensionOperation::kEQUAL: return a == b;
    case DimensionOperation::kLESS: return a < b;
    case DimensionOperation::kFLOOR_DIV: return floorDiv(a, b);
    case DimensionOperation::kCEIL_DIV: return b == 0 ? 0 : -floorDiv(-a, b);
    }
    return 0;
}

bool isKnownOp(DimensionOperation op) { return std::strcmp(opName(op), "?") != 0; }

} // namespace

// ---- Expr --------------------------------------------------------------------------------------

Expr::Expr(Kind kind, int64_t value, std::string symbol, DimensionOperation op, Expr const* a, Expr const* b, int32_t sizeOutput) : mState{}
{
    mState.kind = kind;
    mState.value = value;
    mState.symbol = std::move(symbol);
    mState.op = op;
    mState.a = a;
    mState.b = b;
    mState.sizeOutput = sizeOutput;
    mImpl = &mState;
}

std::string Expr::text() const
{
    switch (mState.kind)
    {
    case Kind::kConstant: return std::to_string(mState.value);
    case Kind::kSymbol: return mState.symbol;
    case Kind::kOperation: return std::string("(") + opName(mState.op) + " " + mState.a->text() + " " + mState.b->text() + ")";
    case Kind::kSizeTensor: return "size_tensor[" + std::to_string(mState.sizeOutput) + "]";
    }
    return "?";
}

bool Expr::dependsOnSizeTensor() const
{
    if (mState.kind == Kind::kSizeTensor)
        return true;
    return mState.kind == Kind::kOperation && (mState.a->dependsOnSizeTensor() || mState.b->dependsOnSizeTensor());
}

int64_t Expr::evaluate(SymbolValues const& values, Point point) const
{
    switch (mState.kind)
    {
    case Kind::kConstant: return mState.value;
    case Kind::kSymbol:
    {
        auto it = values.find(mState.symbol);
        return it == values.end() ? -1 : it->second;
    }
    case Kind::kOperation: return apply(mState.op, mState.a->evaluate(values, point), mState.b->evaluate(values, point));
    case Kind::kSizeTensor:
        return point == Point::kMin ? 0 : point == Point::kOpt ? mState.a->evaluate(values, point) : mState.b->evaluate(values, point);
    }
    return -1;
}

// ---- ExprBuilder -------------------------------------------------------------------------------

ExprBuilder::ExprBuilder() { mImpl = &mState; }

Expr const* ExprBuilder::symbol(std::string const& name)
{
    return mState.make(Expr::Kind::kSymbol, 0, name, DimensionOperation::kSUM, nullptr, nullptr, -1);
}

Expr const* ExprBuilder::constantExpr(int64_t value)
{
    return mState.make(Expr::Kind::kConstant, value, "", DimensionOperation::kSUM, nullptr, nullptr, -1);
}

Expr const* ExprBuilder::Impl::make(
        Expr::Kind kind, int64_t value, std::string symbol, DimensionOperation op, Expr const* a, Expr const* b, int32_t sizeOutput)
{
    pool.push_back(std::make_unique<Expr>(kind, value, std::move(symbol), op, a, b, sizeOutput));
    return pool.back().get();
}

IDimensionExpr const* ExprBuilder::Impl::constant(int64_t value)
{
    return make(Expr::Kind::kConstant, value, "", DimensionOperation::kSUM, nullptr, nullptr, -1);
}

IDimensionExpr const* ExprBuilder::Impl::operation(DimensionOperation op, IDimensionExpr const& first, IDimensionExpr const& second)
{
    if (!isKnownOp(op))
    {
        errors.push_back("operation() with an unknown DimensionOperation");
        return nullptr;
    }
    // Every IDimensionExpr a plugin sees here was made by this builder.
    auto const& a = static_cast<Expr const&>(first);
    auto const& b = static_cast<Expr const&>(second);
    if (a.kind() == Expr::Kind::kConstant && b.kind() == Expr::Kind::kConstant)
        return constant(apply(op, a.getConstantValue(), b.getConstantValue()));
    return make(Expr::Kind::kOperation, 0, "", op, &a, &b, -1);
}

IDimensionExpr const* ExprBuilder::Impl::declareSizeTensor(int32_t outputIndex, IDimensionExpr const& opt, IDimensionExpr const& upper)
{
    auto const& o = static_cast<Expr const&>(opt);
    auto const& u = static_cast<Expr const&>(upper);
    if (o.dependsOnSizeTensor() || u.dependsOnSizeTensor())
        errors.push_back("declareSizeTensor(" + std::to_string(outputIndex) + "): opt and upper must not depend on a size tensor");
    if (sizeTensors.count(outputIndex))
        errors.push_back("declareSizeTensor(" + std::to_string(outputIndex) + ") declared twice");
    Expr const* e = make(Expr::Kind::kSizeTensor, 0, "", DimensionOperation::kSUM, &o, &u, outputIndex);
    sizeTensors[outputIndex] = e;
    return e;
}

// ---- Logger ------------------------------------------------------------------------------------

void Logger::log(Severity severity, AsciiChar const* msg) noexcept
{
    if (severity <= Severity::kERROR)
        mErrors.emplace_back(msg ? msg : "");
}

std::vector<std::string> Logger::takeErrors()
{
    std::vector<std::string> out;
    out.swap(mErrors);
    return out;
}

// ---- Registry ----------------------------------------------------------------------------------

namespace {

bool creatorIdentity(IPluginCreatorInterface& c, std::string& name, std::string& version, std::string& ns)
{
    if (std::strcmp(c.getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") != 0)
        return false;
    auto& v3 = static_cast<IPluginCreatorV3One&>(c);
    char const* n = v3.getPluginName();
    char const* v = v3.getPluginVersion();
    char const* s = v3.getPluginNamespace();
    if (!n || !v || !s)
        return false;
    name = n;
    version = v;
    ns = s;
    return true;
}

} // namespace

bool Registry::add(IPluginCreatorInterface& creator, char const* ns, void* library)
{
    Entry e{&creator, "", "", "", library};
    std::string own;
    if (!creatorIdentity(creator, e.name, e.version, own))
    {
        mProblems.push_back("a creator is not an IPluginCreatorV3One with a name, version and namespace");
        return false;
    }
    e.ns = ns && *ns ? ns : own;
    for (auto const& x : mEntries)
        if (x.name == e.name && x.version == e.version && x.ns == e.ns)
            return false; // TensorRT refuses a second creator with the same identity
    mEntries.push_back(e);
    return true;
}

IPluginRegistry::PluginLibraryHandle Registry::loadLibrary(AsciiChar const* pluginPath) noexcept
{
    void* handle = dlopen(pluginPath, RTLD_NOW | RTLD_LOCAL);
    if (!handle)
    {
        char const* err = dlerror();
        mLastLoadError = err ? err : "dlopen failed";
        return nullptr;
    }
    using SetLoggerFinder = void (*)(ILoggerFinder*);
    using GetCreators = IPluginCreatorInterface* const* (*)(int32_t&);
    auto setLoggerFinder = reinterpret_cast<SetLoggerFinder>(dlsym(handle, "setLoggerFinder"));
    auto getCreators = reinterpret_cast<GetCreators>(dlsym(handle, "getCreators"));
    if (!getCreators)
    {
        mLastLoadError = "the library exports no getCreators";
        dlclose(handle);
        return nullptr;
    }
    mLoading = true;
    if (setLoggerFinder)
        setLoggerFinder(mFinder);
    int32_t n = 0;
    IPluginCreatorInterface* const* creators = getCreators(n);
    mLoading = false;
    size_t const before = mEntries.size(); // dlopen of a loaded library returns its handle: keep earlier loads' entries
    for (int32_t i = 0; creators && i < n; ++i)
        if (!creators[i] || !add(*creators[i], nullptr, handle))
        {
            mEntries.resize(before);
            dlclose(handle);
            mLastLoadError = "creator " + std::to_string(i) + " is registered already (or is no IPluginCreatorV3One)";
            return nullptr;
        }
    return handle;
}

void Registry::deregisterLibrary(PluginLibraryHandle handle) noexcept
{
    mEntries.erase(std::remove_if(mEntries.begin(), mEntries.end(), [&](Entry const& e) { return e.library == handle; }), mEntries.end());
}

bool Registry::registerCreator(IPluginCreatorInterface& creator, AsciiChar const* const pluginNamespace) noexcept
{
    ++mRegisterCalls;
    if (mLoading)
        mProblems.push_back("registerCreator() called from inside loadLibrary (re-entrant registry call)");
    return add(creator, pluginNamespace, nullptr);
}

IPluginCreatorInterface* const* Registry::getAllCreators(int32_t* const numCreators) const noexcept
{
    mAll.clear();
    for (auto const& e : mEntries)
        mAll.push_back(e.creator);
    *numCreators = static_cast<int32_t>(mAll.size());
    return mAll.data();
}

IPluginCreatorInterface* Registry::getCreator(
        AsciiChar const* const pluginName, AsciiChar const* const pluginVersion, AsciiChar const* const pluginNamespace) noexcept
{
    for (auto const& e : mEntries)
        if (e.name == pluginName && e.version == pluginVersion && e.ns == (pluginNamespace ? pluginNamespace : ""))
            return e.creator;
    return nullptr;
}

bool Registry::deregisterCreator(IPluginCreatorInterface const& creator) noexcept
{
    if (mLoading)
        mProblems.push_back("deregisterCreator() called from inside loadLibrary (re-entrant registry call)");
    auto before = mEntries.size();
    mEntries.erase(std::remove_if(mEntries.begin(), mEntries.end(), [&](Entry const& e) { return e.creator == &creator; }), mEntries.end());
    return mEntries.size() != before;
}

Logger& logger()
{
    static Logger instance;
    return instance;
}

Registry& registry()
{
    static LoggerFinder finder{&logger()};
    static Registry instance{&finder};
    return instance;
}

} // namespace irexport::standin

// What the stand-in libnvinfer's getPluginRegistry / getLogger return (named apart from TensorRT's entry
// points, so a library under test cannot bind to the harness instead of to libnvinfer).
extern "C" __attribute__((visibility("default"))) nvinfer1::IPluginRegistry* irexportHarnessRegistry()
{
    return &irexport::standin::registry();
}

extern "C" __attribute__((visibility("default"))) nvinfer1::ILogger* irexportHarnessLogger() { return &irexport::standin::logger(); }
