// sd_notify through libsystemd, the implementation systemd itself maintains.
#include "net/service_notify.h"

#include <systemd/sd-daemon.h>

#include <string>

namespace poplar::net {

void notify_service_manager(std::string_view state) {
    const std::string s(state);
    // Failures are not actionable: a service manager that cannot be told only loses a status.
    (void)::sd_notify(0, s.c_str());
}

}  // namespace poplar::net
