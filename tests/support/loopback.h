// Sockets on 127.0.0.1 for tests: a free port, whether something listens,
// and one whole HTTP exchange.
#pragma once

#include <optional>
#include <string>

namespace cairn {

// A port nothing listens on right now (the kernel's pick for port 0); 0 if
// none could be had.
int FreeLoopbackPort();
// Whether something accepts connections on 127.0.0.1:port.
bool LoopbackListening(int port);
// Sends `request` to 127.0.0.1:port and returns everything the server
// answers until it closes (at most 10 s); with `close_write`, shuts down
// the sending side after the request. nullopt if nobody listens.
std::optional<std::string> LoopbackExchange(int port, const std::string& request,
                                            bool close_write = false);

}  // namespace cairn
