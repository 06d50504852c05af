// Readiness and state notifications to systemd (sd_notify(3)) for `Type=notify` units:
// READY=1 once every listener is bound, RELOADING=1 ... READY=1 around a reload, STOPPING=1 at
// shutdown. Without $NOTIFY_SOCKET (not started by systemd) each call does nothing.
#pragma once

#include <string_view>

namespace poplar::net {

void notify_service_manager(std::string_view state);

}  // namespace poplar::net
