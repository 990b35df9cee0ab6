// suspension: the thread-local hook itself.
#include "host/suspension.hpp"

namespace plugd {

suspend_hook& this_thread_suspend_hook() noexcept {
    static thread_local suspend_hook hook;
    return hook;
}

}  // namespace plugd
