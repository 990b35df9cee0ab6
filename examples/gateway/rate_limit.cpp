// rate_limit: the plugin file of gateway::rate_limit (rate_limit.hpp).
#include "rate_limit.hpp"

PLUGD_PLUGIN(gateway::rate_limit)
