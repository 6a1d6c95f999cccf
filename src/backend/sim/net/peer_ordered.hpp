// coyote-mpi sim backend: the NIC's accesses to registered memory on behalf of a remote peer, as seen by
// ThreadSanitizer (a no-op in every other build).
#pragma once

#if defined(__SANITIZE_THREAD__)
#define COYOTE_DETAIL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define COYOTE_DETAIL_TSAN 1
#endif
#endif

#ifdef COYOTE_DETAIL_TSAN
// ThreadSanitizer's dynamic annotations (its runtime defines them).
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
#endif

namespace coyote::detail::sim::net {

/// Scope in which a wire thread reads or writes a process's registered memory for a remote peer's READ or WRITE,
/// as the FPGA's DMA engine does. The owner orders its own accesses to that memory with the peer's requests
/// through the peer, a process ThreadSanitizer does not see (it fills a buffer, then syncs out of band; the peer
/// READs it after that sync), so within the scope this thread's memory accesses are not recorded. Synchronisation
/// (locks, atomics) still is.
class PeerOrderedAccess {
public:
    PeerOrderedAccess() noexcept {
#ifdef COYOTE_DETAIL_TSAN
        AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
        AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
#endif
    }
    ~PeerOrderedAccess() {
#ifdef COYOTE_DETAIL_TSAN
        AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
        AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
#endif
    }
    PeerOrderedAccess(const PeerOrderedAccess&) = delete;
    PeerOrderedAccess& operator=(const PeerOrderedAccess&) = delete;
};

}  // namespace coyote::detail::sim::net
