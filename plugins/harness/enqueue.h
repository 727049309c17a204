#pragma once

namespace irexport::harness {

// Runs every case's plugin on the GPU through enqueue, with the inputs under dataDir (see enqueue.cpp).
// 0: every case ran; 1: a case failed; 2: no GPU, or bad input.
int runEnqueue(char const* library, char const* casesPath, char const* dataDir);

} // namespace irexport::harness
