// npy_roundtrip IN.npy OUT.npy: reads an array and writes it back; prints "DTYPE SHAPE" (e.g. "int64 [1,8]").
// The tests compare both files with numpy to check engines/runtime/npy.cpp without TensorRT or a GPU.
#include "npy.h"

#include <cstdio>
#include <exception>

int main(int argc, char** argv)
{
    if (argc != 3)
    {
        std::fprintf(stderr, "usage: npy_roundtrip IN.npy OUT.npy\n");
        return 2;
    }
    try
    {
        irexport::NpyArray const array = irexport::readNpy(argv[1]);
        irexport::writeNpy(argv[2], array);
        std::printf("%s %s\n", irexport::dtypeName(array.dtype), irexport::shapeString(array.shape).c_str());
        return 0;
    }
    catch (irexport::InputError const& e)
    {
        std::fprintf(stderr, "npy_roundtrip: error: %s\n", e.what());
        return 2;
    }
    catch (std::exception const& e)
    {
        std::fprintf(stderr, "npy_roundtrip: error: %s\n", e.what());
        return 1;
    }
}
