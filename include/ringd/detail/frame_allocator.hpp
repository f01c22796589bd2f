// SPDX-License-Identifier: MIT
// ringd/detail/frame_allocator.hpp — recycling allocator for coroutine frames.
// A daemon spawns one coroutine per connection; after warm-up every frame comes from a per-thread
// free list, so steady-state spawning does not touch the heap.
#pragma once

#include <array>
#include <cstddef>
#include <new>
#include <utility>

namespace ringd::detail {

// Frames are binned by size in 64-byte classes up to 4 KiB; bigger frames go to the heap.
// Each class keeps at most `max_cached_per_class` free blocks so a burst does not pin memory
// forever. Blocks freed on another thread go to that thread's lists (harmless: same sizes).
class frame_allocator {
public:
    static constexpr std::size_t granule = 64;
    static constexpr std::size_t class_count = 64; // 64 B .. 4 KiB
    static constexpr std::size_t max_cached_per_class = 4096;

    static void* allocate(std::size_t size) {
        std::size_t cls = class_of(size);
        if (cls >= class_count) return ::operator new(size);
        auto& list = lists().bins[cls];
        list.used = true;
        if (list.head != nullptr) {
            free_block* block = list.head;
            list.head = block->next;
            --list.count;
            return block;
        }
        return ::operator new((cls + 1) * granule);
    }

    // Fills the free list of every size class this thread has used so far up to `frames`
    // blocks. A daemon calls it after start-up (once each coroutine shape has run) with its
    // connection limit; from then on even a burst up to that limit takes nothing from the heap.
    static void prime(std::size_t frames) {
        if (frames > max_cached_per_class) frames = max_cached_per_class;
        for (std::size_t cls = 0; cls < class_count; ++cls) {
            auto& list = lists().bins[cls];
            while (list.used && list.count < frames) {
                auto* block = static_cast<free_block*>(::operator new((cls + 1) * granule));
                block->next = list.head;
                list.head = block;
                ++list.count;
            }
        }
    }

    static void deallocate(void* p, std::size_t size) noexcept {
        std::size_t cls = class_of(size);
        if (cls >= class_count) return ::operator delete(p);
        auto& list = lists().bins[cls];
        if (list.count >= max_cached_per_class) return ::operator delete(p);
        auto* block = static_cast<free_block*>(p);
        block->next = list.head;
        list.head = block;
        ++list.count;
    }

private:
    struct free_block {
        free_block* next;
    };
    struct bin {
        free_block* head = nullptr;
        std::size_t count = 0;
        bool used = false; // some frame of this size was allocated: prime() fills it
    };
    // Owns the cached blocks of one thread and returns them to the heap when the thread ends.
    struct thread_lists {
        std::array<bin, class_count> bins{};
        ~thread_lists() {
            for (auto& b : bins)
                while (b.head != nullptr) ::operator delete(std::exchange(b.head, b.head->next));
        }
    };

    static std::size_t class_of(std::size_t size) noexcept {
        return size == 0 ? 0 : (size - 1) / granule;
    }
    static thread_lists& lists() noexcept {
        thread_local thread_lists instance;
        return instance;
    }
};

} // namespace ringd::detail
