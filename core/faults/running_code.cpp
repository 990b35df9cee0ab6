// running_code: the thread-local record itself (static TLS of the executable, so a
// signal handler may read it).
#include "faults/running_code.hpp"

namespace plugd {

running_code& this_thread_runs() noexcept {
    static thread_local running_code runs;
    return runs;
}

}  // namespace plugd
