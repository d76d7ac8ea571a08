// The one thread runner of the C++ core (header-only: a template).
#pragma once

#include <cstddef>
#include <exception>
#include <thread>
#include <vector>

namespace ncii {

// Runs body(t) on `nthreads` threads (the caller's thread when 1) and rethrows the first
// worker error after every thread has joined.
template <class Body>
void run_parallel(std::size_t nthreads, Body&& body) {
  if (nthreads <= 1) {
    body(std::size_t{0});
    return;
  }
  std::vector<std::exception_ptr> errors(nthreads);
  std::vector<std::thread> pool;
  pool.reserve(nthreads);
  auto guarded = [&](std::size_t t) {
    try {
      body(t);
    } catch (...) {
      errors[t] = std::current_exception();
    }
  };
  std::exception_ptr spawn_error;
  try {
    for (std::size_t t = 1; t < nthreads; ++t) pool.emplace_back(guarded, t);
  } catch (...) {
    spawn_error = std::current_exception();
  }
  if (!spawn_error) guarded(0);
  for (auto& th : pool) th.join();
  if (spawn_error) std::rethrow_exception(spawn_error);
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace ncii
