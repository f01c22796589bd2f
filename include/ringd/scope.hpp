// SPDX-License-Identifier: MIT
// ringd/scope.hpp — a scope owns the tasks spawned into it: it starts them, cancels them through
// one std::stop_source, and joins them. A child's exception reaches the owner, never vanishes.
// Cancelling the coroutine that joins a scope cancels the scope's children.
#pragma once

#include <ringd/detail/stop_binding.hpp>
#include <ringd/task.hpp>

#include <coroutine>
#include <cstddef>
#include <cstdio>
#include <exception>
#include <functional>
#include <stop_token>
#include <utility>

namespace ringd {

class scope : private detail::task_owner {
public:
    // Called with each child's exception as it happens (on the loop's thread). Without one, the
    // first exception is kept and rethrown by join(); later ones are counted.
    using error_handler = std::function<void(std::exception_ptr)>;

    scope() : task_owner{&finished_thunk} {}
    explicit scope(error_handler on_error)
        : task_owner{&finished_thunk}, on_error_(std::move(on_error)) {}
    scope(const scope&) = delete;
    scope& operator=(const scope&) = delete;
    // A scope must be joined before it goes away: its children point into it. Destroying one
    // with live children is a bug that would corrupt memory later, so it stops the program here.
    ~scope() {
        if (live_ != 0) {
            std::fprintf(stderr,
                         "ringd::scope destroyed with %zu running tasks; "
                         "co_await scope.join() first\n",
                         live_);
            std::terminate();
        }
    }

    // Starts `child` now; it runs until its first suspension, then this returns. The child
    // inherits this scope's stop token, so request_stop() reaches every operation it awaits.
    void spawn(task<void> child);

    // Cancels every child's in-flight operation; each completes with operation_canceled.
    // Children spawned later start already cancelled. Call on the loop's thread.
    void request_stop() noexcept { stop_source_.request_stop(); }
    [[nodiscard]] bool stop_requested() const noexcept { return token_.stop_requested(); }
    [[nodiscard]] const std::stop_token& token() const noexcept { return token_; }

    [[nodiscard]] std::size_t size() const noexcept { return live_; }
    [[nodiscard]] std::size_t error_count() const noexcept { return errors_; }

    class join_operation {
    public:
        explicit join_operation(scope& s) noexcept : scope_(&s) {}
        bool await_ready() const noexcept { return scope_->live_ == 0; }
        // Cancellation flows down: if the joining coroutine is (or gets) cancelled, so do the
        // scope's children. A server loop whose accept is cancelled thus ends its handlers too.
        template <class Promise>
        void await_suspend(std::coroutine_handle<Promise> awaiting) {
            scope_->joiner_ = awaiting;
            // A stop requested already is forwarded at once.
            forward_stop_.bind(detail::stop_token_of(awaiting), stop_forwarder{scope_});
        }
        // Rethrows the first child exception that no error handler took.
        void await_resume() {
            forward_stop_.unbind();
            if (scope_->first_error_)
                std::rethrow_exception(std::exchange(scope_->first_error_, {}));
        }

    private:
        struct stop_forwarder {
            scope* target;
            void operator()() const noexcept { target->request_stop(); }
        };
        scope* scope_;
        detail::stop_binding<stop_forwarder> forward_stop_; // bound while joining
    };
    // Waits until every child has finished. Only one coroutine may join at a time.
    [[nodiscard]] join_operation join() noexcept { return join_operation(*this); }

private:
    // A child ended (its frame is already gone): note its exception, count it out, and resume
    // the joiner after the last one.
    static std::coroutine_handle<> finished_thunk(detail::task_owner* self,
                                                  std::exception_ptr error) noexcept {
        auto* s = static_cast<scope*>(self);
        if (error) s->record_error(std::move(error));
        return s->child_finished();
    }

    std::coroutine_handle<> child_finished() noexcept {
        if (--live_ == 0 && joiner_) return std::exchange(joiner_, {});
        return std::noop_coroutine();
    }
    void record_error(std::exception_ptr e) noexcept {
        ++errors_;
        if (on_error_) {
            on_error_(std::move(e)); // a throwing handler ends in std::terminate: noexcept path
        } else if (!first_error_) {
            first_error_ = std::move(e);
        }
    }

    std::stop_source stop_source_;                     // request_stop() cancels every child
    std::stop_token token_ = stop_source_.get_token(); // what children's ops register with
    std::size_t live_ = 0;                             // children started and not finished
    std::coroutine_handle<> joiner_;                   // the coroutine in join(), if any
    std::exception_ptr first_error_;                   // for join() to rethrow
    std::size_t errors_ = 0;                           // child exceptions seen in all
    error_handler on_error_;                           // optional: errors as they happen
};

// The child runs in its own frame, with the scope as its owner instead of an awaiter: no wrapper
// coroutine, so a spawn costs one frame (from the recycling allocator), not two.
inline void scope::spawn(task<void> child) {
    auto handle = child.release();
    if (!handle) return;
    handle.promise().set_owner(this, &token_);
    ++live_;
    handle.resume();
}

} // namespace ringd
