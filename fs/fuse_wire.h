// What cairn reads from and writes to /dev/fuse beyond what libfuse 3.14
// knows of: FUSE_HANDLE_KILLPRIV_V2.
//
// Without it the kernel asks for security.capability before every write(2)
// (a GETXATTR round trip: a 4 KiB random write cost 1.74 requests instead
// of 1), because it cannot tell that the file has no capability to drop.
// With it the kernel marks a file checked once (S_NOSEC) and leaves clearing
// setuid and setgid to the filesystem: it flags an unprivileged write,
// truncate or O_TRUNC open that must clear them. libfuse 3.14 neither
// offers the flag nor passes those request flags on, so the hooks here
// (libfuse's custom I/O) set the flag in the INIT reply when the kernel
// offers it and note the flags of each request as it is read; libfuse hands
// a request to a handler on the thread that read it.
//
// Promises: InstallWireHooks is called once, after fuse_session_mount;
// CurrentRequestKillsSuidgid is true exactly while a handler serves a
// WRITE, SETATTR, OPEN or CREATE that carries the kernel's kill flag.
#pragma once

struct fuse_session;

namespace cairn {

// 0 or a negative errno from libfuse.
int InstallWireHooks(fuse_session* session);

// The request this thread handles asks the filesystem to clear the file's
// setuid bit, and its setgid bit if it is group-executable.
bool CurrentRequestKillsSuidgid();

// The kernel took FUSE_HANDLE_KILLPRIV_V2 (for status and tests).
bool KillprivV2Negotiated();

}  // namespace cairn
