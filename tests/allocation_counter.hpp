// SPDX-License-Identifier: MIT
// The allocation count of tests/allocation_counter.cpp, which replaces the global operator new in
// the test programs that link it.
#pragma once

#include <cstddef>

namespace test_support {
// Allocations made by this thread through any form of global operator new since it started.
// A test reads it before and after what it measures; other threads (clients) do not add to it.
extern thread_local std::size_t allocation_count;
} // namespace test_support
