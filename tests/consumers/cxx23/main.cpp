// SPDX-License-Identifier: MIT
// Under C++23 (-std=c++2b) result<T> is std::expected, not tl::expected: ./run test-install
// compiles this with g++ 12 and clang++ 19 against the installed headers. result.hpp comes first:
// it must see __cpp_lib_expected with nothing included before it (it includes <version> itself).
#include <ringd/result.hpp>

#include <ringd.hpp>

#include <expected>
#include <type_traits>

static_assert(std::is_same_v<ringd::result<int>, std::expected<int, std::error_code>>,
              "with std::expected available, ringd::result is std::expected");

ringd::task<int> nap(ringd::io_context& ctx) {
    auto slept = co_await ringd::sleep_for(ctx, std::chrono::milliseconds(1));
    co_return slept ? 0 : 1;
}

int main() {
    ringd::io_context ctx;
    return ctx.run(nap(ctx));
}
