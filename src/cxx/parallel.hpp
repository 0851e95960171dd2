// parallel.hpp — a core's loop on several threads inside one backend (index
// builds: docs/methods.md "Parallel builds").
//
// A backend is single-threaded as far as PostgreSQL knows, so the threads
// here touch plain buffers only, never a PostgreSQL function, and block
// every signal: the backend's handlers keep running on the backend's own
// thread. Only that thread polls for interrupts (between its chunks); the
// others stop at their next chunk once any thread has failed. The first
// exception is rethrown to the caller, inside its imgs::guard.
#pragma once

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "cxx/guard.hpp"

namespace imgs {

// body(begin, end) for consecutive chunks of [0, n), `chunk` items each, on
// up to `threads` threads (the caller's among them). Chunks are taken in
// any order, so body must write only what its own items own; the result is
// then the same for any number of threads.
template <typename Body>
void parallel_for(int threads, int64_t n, int64_t chunk, Body &&body) {
    chunk = std::max<int64_t>(chunk, 1);
    int64_t chunks = (n + chunk - 1) / chunk;
    threads = (int) std::max<int64_t>(1, std::min<int64_t>(threads, chunks));
    std::atomic<int64_t> next{0};
    std::atomic<bool> stop{false};
    std::exception_ptr failure;
    std::mutex failure_mutex;
    auto run = [&](bool backend_thread) {
        try {
            for (;;) {
                if (stop.load(std::memory_order_relaxed))
                    return;
                if (backend_thread)
                    check_interrupts();
                int64_t begin = next.fetch_add(chunk, std::memory_order_relaxed);
                if (begin >= n)
                    return;
                body(begin, std::min(n, begin + chunk));
            }
        } catch (...) {
            std::lock_guard<std::mutex> lock(failure_mutex);
            if (!failure)
                failure = std::current_exception();
            stop.store(true);
        }
    };
    std::vector<std::thread> helpers;
    if (threads > 1) {
        sigset_t all, old;
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);   // inherited by the new threads
        try {
            helpers.reserve(threads - 1);
            for (int t = 1; t < threads; t++)
                helpers.emplace_back(run, false);
        } catch (...) {
            // no thread to be had (a limit, memory): the ones that started, and this one, do it all
        }
        pthread_sigmask(SIG_SETMASK, &old, nullptr);
    }
    run(true);
    for (auto &t : helpers)
        t.join();
    if (failure)
        std::rethrow_exception(failure);
}

}  // namespace imgs
