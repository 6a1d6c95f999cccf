// coyote-mpi: a process-wide object that is never destroyed and starts afresh in a forked child.
#pragma once

#include <pthread.h>

namespace coyote::detail {

/// The one `T` of this process. Never destroyed: detached threads may still use it during static destruction.
/// A forked child gets a fresh `T`, since the parent's mutexes may be held by threads the child does not have and
/// the parent's contents are not the child's; the inherited object stays reachable (not a leak).
template <class T>
class PerProcess {
public:
    static T& get() {
        static const bool installed = [] {
            current_ = new Node{};
            (void)::pthread_atfork(nullptr, nullptr, [] { current_ = new Node{{}, current_}; });
            return true;
        }();
        (void)installed;
        return current_->value;
    }

private:
    struct Node {
        T value;
        Node* inherited = nullptr;
    };
    static inline Node* current_ = nullptr;
};

}  // namespace coyote::detail
