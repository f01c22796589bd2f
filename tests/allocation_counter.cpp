// SPDX-License-Identifier: MIT
// Replaces the global operator new to count the allocations each thread makes, for the tests
// that promise none ("a transition never allocates", "an echoed message allocates nothing").
// In its own translation unit so that the compiler never sees malloc/free through an inlined
// operator new/delete pair (g++ 12 then warns -Wmismatched-new-delete).
#include "allocation_counter.hpp"

#include <cstdlib>
#include <new>

namespace test_support {
thread_local std::size_t allocation_count = 0;
}

void* operator new(std::size_t n) {
    ++test_support::allocation_count;
    if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    return operator new(n);
}
// The nothrow forms too: otherwise (under ASan) they come from the sanitizer and their memory
// reaches the free() below, which ASan reports as a mismatch. Catch2 uses new(std::nothrow).
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    ++test_support::allocation_count;
    return std::malloc(n == 0 ? 1 : n);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept {
    return operator new(n, t);
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete[](void* p) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
