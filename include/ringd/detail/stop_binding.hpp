// SPDX-License-Identifier: MIT
// ringd/detail/stop_binding.hpp — how every awaiter listens to the awaiting coroutine's stop
// token: one stop_callback, registered while the awaiter waits, that cancels what it waits for.
#pragma once

#include <optional>
#include <stop_token>

namespace ringd::detail {

// Whether the stop was requested before the wait began: then the operation uses no SQE and
// completes at once with operation_canceled. `token` is what stop_token_of() gives: nullptr
// when the coroutine carries none.
[[nodiscard]] inline bool stop_requested(const std::stop_token* token) noexcept {
    return token != nullptr && token->stop_requested();
}

// The usage, in an awaiter whose cancel action is the noexcept callable `Cancel`:
//   await_suspend: if stop_requested(token), complete at once with ECANCELED; else put the
//                  operation in the ring, then bind(token, Cancel{...});
//   await_resume:  unbind().
template <class Cancel>
class stop_binding {
public:
    // From now until unbind(), a stop request calls `cancel` (at once if it has come already).
    // Call it once the operation is in the ring, so that the cancellation finds it. A token
    // that can never stop registers nothing.
    void bind(const std::stop_token* token, Cancel cancel) noexcept {
        callback_.reset();
        if (token != nullptr && token->stop_possible()) callback_.emplace(*token, cancel);
    }

    // bind(), but a registration with the same token is kept: a consumer that awaits one stream
    // in a loop registers once, not once per item. Another token replaces it; none drops it.
    void rebind(const std::stop_token* token, Cancel cancel) noexcept {
        if (token != nullptr && token->stop_possible() && callback_ && token_ == *token) return;
        bind(token, cancel);
        token_ = callback_ ? *token : std::stop_token();
    }

    // Stops listening (the wait is over, or its owner is going away).
    void unbind() noexcept {
        callback_.reset();
        token_ = std::stop_token();
    }

private:
    std::optional<std::stop_callback<Cancel>> callback_; // registered while bound
    std::stop_token token_;                              // rebind(): the token bound to
};

} // namespace ringd::detail
