// The run's report: a human table, or one JSON object (for bench/run-vs-dovecot).
#pragma once

#include <string>

#include "options.h"
#include "sessions.h"

namespace loadgen {

std::string human_report(const options& opt, run_result& r);
std::string json_report(const options& opt, run_result& r);

}  // namespace loadgen
