// no_factory: carries a valid fingerprint but exports no handler factory (PLUGD_PLUGIN
// forgotten), so the core must refuse it with a message saying what is missing.
#include <plugd/version.hpp>

extern "C" __attribute__((visibility("default"), used, section(".plugd_abi")))
const char plugd_abi_fingerprint[] = PLUGD_ABI_FINGERPRINT;
