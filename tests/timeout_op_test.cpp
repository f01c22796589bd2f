// SPDX-License-Identifier: MIT
#include <ringd/detail/timeout_op.hpp>

#include <catch2/catch.hpp>

#include <cerrno>
#include <chrono>
#include <cstdint>

using namespace std::chrono_literals;
using ringd::detail::timeout_spec;

TEST_CASE("a relative timeout is the delay split into seconds and nanoseconds, with no flag") {
    timeout_spec t = timeout_spec::after(1500ms + 7ns);
    CHECK(t.when.tv_sec == 1);
    CHECK(t.when.tv_nsec == 500'000'007);
    CHECK(t.flags == 0);
}

TEST_CASE("a negative delay counts as zero") {
    timeout_spec t = timeout_spec::after(-5ms);
    CHECK(t.when.tv_sec == 0);
    CHECK(t.when.tv_nsec == 0);
}

TEST_CASE("an absolute timeout is the steady clock's time since its epoch, flagged ABS") {
    const std::chrono::steady_clock::time_point deadline(3s + 7ns);
    timeout_spec t = timeout_spec::at(deadline);
    CHECK(t.when.tv_sec == 3);
    CHECK(t.when.tv_nsec == 7);
    CHECK(t.flags == IORING_TIMEOUT_ABS);
}

TEST_CASE("the SQE names the spec's own timespec, so it must live while the op is in flight") {
    timeout_spec t = timeout_spec::at(std::chrono::steady_clock::time_point(2s));
    io_uring_sqe sqe{};
    t.prepare(&sqe);
    CHECK(sqe.opcode == IORING_OP_TIMEOUT);
    CHECK(sqe.addr == reinterpret_cast<std::uintptr_t>(&t.when));
    CHECK(sqe.off == 0); // no completion count: time alone ends it
    CHECK(sqe.timeout_flags == IORING_TIMEOUT_ABS);
}

TEST_CASE("the kernel's -ETIME is the time coming; a cancel stays an error") {
    CHECK(timeout_spec::outcome(-ETIME) == 0);
    CHECK(timeout_spec::outcome(0) == 0);
    CHECK(timeout_spec::outcome(-ECANCELED) == -ECANCELED);
}
