// SPDX-License-Identifier: MIT
// ringd/task.hpp — task<T>, the lazy coroutine type that every asynchronous function returns.
// A task starts when awaited, resumes its awaiter by symmetric transfer, passes exceptions to the
// awaiter, and inherits the awaiter's stop token. Frames come from the recycling allocator.
#pragma once

#include <ringd/detail/frame_allocator.hpp>

#include <coroutine>
#include <exception>
#include <optional>
#include <stdexcept>
#include <stop_token>
#include <type_traits>
#include <utility>

namespace ringd {

template <class T = void>
class task;

// Thrown by co_await on a task that holds no coroutine (moved from, released, or
// default-constructed): there is no result to give (cppcoro's broken_promise).
class broken_promise : public std::logic_error {
public:
    broken_promise() : std::logic_error("co_await on an empty task (moved from or released)") {}
};

namespace detail {

// What every ringd promise offers to the operations awaited inside it: the stop token that the
// enclosing scope handed down (nullptr: this coroutine cannot be cancelled).
template <class Promise>
concept cancellable_promise = requires(const Promise& p) {
    { p.stop_token() }
    noexcept->std::same_as<const std::stop_token*>;
};

// The stop token that applies to the coroutine `h`, or nullptr if its promise carries none.
template <class Promise>
const std::stop_token* stop_token_of(std::coroutine_handle<Promise> h) noexcept {
    if constexpr (cancellable_promise<Promise>)
        return h.promise().stop_token();
    else
        return nullptr;
}

// The owner of a task that nobody awaits (a scope, see scope::spawn): when the task ends, its
// frame is destroyed and the owner hears what it threw, then names the coroutine to run next.
// A function pointer rather than a virtual function: the owner stays a non-polymorphic type.
struct task_owner {
    using finished_fn = std::coroutine_handle<> (*)(task_owner* self,
                                                    std::exception_ptr error) noexcept;
    finished_fn task_finished;
};

class task_promise_base {
public:
    static void* operator new(std::size_t size) { return frame_allocator::allocate(size); }
    static void operator delete(void* p, std::size_t size) noexcept {
        frame_allocator::deallocate(p, size);
    }

    std::suspend_always initial_suspend() const noexcept { return {}; }

    // Symmetric transfer to the awaiter: no stack growth however long the chain of tasks. A task
    // with an owner instead of an awaiter frees its own frame and hands over to the owner.
    struct final_awaiter {
        bool await_ready() const noexcept { return false; }
        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) const noexcept {
            task_promise_base& p = h.promise();
            if (p.owner_ == nullptr) return p.continuation_;
            task_owner* owner = p.owner_;
            std::exception_ptr error = std::move(p.exception_);
            h.destroy();
            return owner->task_finished(owner, std::move(error));
        }
        void await_resume() const noexcept {}
    };
    final_awaiter final_suspend() const noexcept { return {}; }

    void unhandled_exception() noexcept { exception_ = std::current_exception(); }

    const std::stop_token* stop_token() const noexcept { return stop_token_; }

    // Called by the awaiter just before the task starts.
    void set_continuation(std::coroutine_handle<> awaiter, const std::stop_token* token) noexcept {
        continuation_ = awaiter;
        stop_token_ = token;
    }
    // Called by an owner that starts the task without awaiting it (its frame, once released from
    // the task object, then belongs to the task itself until it ends).
    void set_owner(task_owner* owner, const std::stop_token* token) noexcept {
        owner_ = owner;
        stop_token_ = token;
    }

protected:
    void rethrow_if_failed() const {
        if (exception_) std::rethrow_exception(exception_);
    }

private:
    std::coroutine_handle<> continuation_ = std::noop_coroutine(); // resumed when the task ends
    const std::stop_token* stop_token_ = nullptr; // owned by the enclosing scope, outlives us
    std::exception_ptr exception_;                // what the body threw, for the awaiter
    task_owner* owner_ = nullptr;                 // set instead of an awaiter: see task_owner
};

template <class T>
class task_promise final : public task_promise_base {
public:
    task<T> get_return_object() noexcept;

    template <class U>
    requires std::is_convertible_v<U&&, T>
    void return_value(U&& value) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
        value_.emplace(std::forward<U>(value));
    }

    T take_result() {
        rethrow_if_failed();
        return std::move(*value_);
    }

private:
    std::optional<T> value_; // set by co_return
};

template <>
class task_promise<void> final : public task_promise_base {
public:
    task<void> get_return_object() noexcept;
    void return_void() const noexcept {}
    void take_result() const { rethrow_if_failed(); }
};

} // namespace detail

template <class T>
class [[nodiscard]] task {
public:
    using promise_type = detail::task_promise<T>;
    using handle_type = std::coroutine_handle<promise_type>;

    task() noexcept = default;
    explicit task(handle_type h) noexcept : handle_(h) {}
    task(task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
    task& operator=(task&& other) noexcept {
        if (this != &other) {
            if (handle_) handle_.destroy();
            handle_ = std::exchange(other.handle_, {});
        }
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    // Destroying a task that never ran destroys its frame (and the arguments it holds).
    ~task() {
        if (handle_) handle_.destroy();
    }

    [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(handle_); }

    class awaiter {
    public:
        explicit awaiter(handle_type h) noexcept : handle_(h) {}
        bool await_ready() const noexcept { return !handle_ || handle_.done(); }
        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> parent) noexcept {
            handle_.promise().set_continuation(parent, detail::stop_token_of(parent));
            return handle_;
        }
        T await_resume() {
            if (!handle_) throw broken_promise();
            return handle_.promise().take_result();
        }

    private:
        handle_type handle_; // the awaited task, still owned by the task object
    };

    awaiter operator co_await() const& noexcept { return awaiter(handle_); }
    awaiter operator co_await() const&& noexcept { return awaiter(handle_); }

    // Gives the frame to the caller (a scope or the event loop), who must destroy it.
    [[nodiscard]] handle_type release() noexcept { return std::exchange(handle_, {}); }

private:
    handle_type handle_; // the lazily started coroutine, or empty
};

namespace detail {
// Without this, operations inside tasks would silently ignore their scope's stop requests.
static_assert(cancellable_promise<task_promise<void>>);
static_assert(cancellable_promise<task_promise<int>>);

template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
    return task<T>(std::coroutine_handle<task_promise<T>>::from_promise(*this));
}
inline task<void> task_promise<void>::get_return_object() noexcept {
    return task<void>(std::coroutine_handle<task_promise<void>>::from_promise(*this));
}
} // namespace detail

} // namespace ringd
