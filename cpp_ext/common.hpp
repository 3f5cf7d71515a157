// Shared helpers for the gear_edge C++ core: errors, bit tricks, and a small parallel_for.
// Portable C++17; no SIMD intrinsics (loops are written so compilers vectorise them on
// x86-64 and aarch64 alike).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace gear {

// Invalid user input. The Python bindings turn this into ValueError.
struct InputError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

template <typename... Args>
[[noreturn]] void fail(Args&&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw InputError(os.str());
}

inline int count_trailing_zeros64(uint64_t v) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_ctzll(v);
#else
  int n = 0;
  while ((v & 1u) == 0u) {
    v >>= 1;
    ++n;
  }
  return n;
#endif
}

inline uint64_t load_u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);  // unaligned-safe; compiles to one load
  return v;
}

// Runs fn(begin, end) over [0, n) split into contiguous chunks on up to `threads` threads
// (the calling thread takes the first chunk). The first exception thrown by any chunk is
// re-thrown on the calling thread after all chunks finish.
template <typename Fn>
void parallel_for(size_t n, int threads, Fn&& fn) {
  // fn(begin, end) over [0, n) in chunks handed out dynamically (items of a batch often differ a
  // lot in cost: a full-frame mask vs a small part), about four chunks per thread.
  if (n == 0) return;
  size_t t = threads < 1 ? 1 : static_cast<size_t>(threads);
  t = std::min(t, n);
  if (t == 1) {
    fn(size_t{0}, n);
    return;
  }
  const size_t grain = std::max<size_t>(1, n / (4 * t));
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto run = [&]() {
    for (;;) {
      const size_t b = next.fetch_add(grain);
      if (b >= n) return;
      try {
        fn(b, std::min(n, b + grain));
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next.store(n);
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(t - 1);
  for (size_t i = 1; i < t; ++i) pool.emplace_back(run);
  run();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

// Work-stealing variant for items of very uneven cost: threads take items one at a time.
template <typename Fn>
void parallel_for_each(size_t n, int threads, Fn&& fn) {
  if (n == 0) return;
  size_t t = threads < 1 ? 1 : static_cast<size_t>(threads);
  t = std::min(t, n);
  if (t == 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<size_t> next{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto run = [&]() {
    for (;;) {
      size_t i = next.fetch_add(1);
      if (i >= n) return;
      try {
        fn(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        next.store(n);
        return;
      }
    }
  };
  std::vector<std::thread> pool;
  pool.reserve(t - 1);
  for (size_t i = 1; i < t; ++i) pool.emplace_back(run);
  run();
  for (auto& th : pool) th.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace gear
