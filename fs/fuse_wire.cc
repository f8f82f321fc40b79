#include "fs/fuse_wire.h"

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>

namespace cairn {
namespace {

thread_local bool request_kills_suidgid = false;
// The unique id of an INIT request whose kernel offers the flag; 0 if none.
std::atomic<uint64_t> init_offering_v2{0};
std::atomic<bool> v2_negotiated{false};

// The request's argument of type T, if the request is long enough for it.
template <typename T>
bool ArgumentOf(const char* request, size_t length, T* out) {
  if (length < sizeof(fuse_in_header) + sizeof(T)) return false;
  memcpy(out, request + sizeof(fuse_in_header), sizeof(T));
  return true;
}

void NoteRequest(const char* request, size_t length) {
  request_kills_suidgid = false;
  if (length < sizeof(fuse_in_header)) return;
  fuse_in_header header;
  memcpy(&header, request, sizeof(header));
  switch (header.opcode) {
    case FUSE_INIT: {
      fuse_init_in init;
      // A major above 7 is answered and asked again with 7 (libfuse does).
      if (ArgumentOf(request, length, &init) && init.major == 7 &&
          (init.flags & FUSE_HANDLE_KILLPRIV_V2) != 0) {
        init_offering_v2 = header.unique;
      }
      break;
    }
    case FUSE_WRITE: {
      fuse_write_in write;
      request_kills_suidgid = ArgumentOf(request, length, &write) &&
                              (write.write_flags & FUSE_WRITE_KILL_SUIDGID) != 0;
      break;
    }
    case FUSE_SETATTR: {
      fuse_setattr_in setattr;
      request_kills_suidgid =
          ArgumentOf(request, length, &setattr) && (setattr.valid & FATTR_KILL_SUIDGID) != 0;
      break;
    }
    case FUSE_OPEN: {
      fuse_open_in open;
      request_kills_suidgid =
          ArgumentOf(request, length, &open) && (open.open_flags & FUSE_OPEN_KILL_SUIDGID) != 0;
      break;
    }
    case FUSE_CREATE: {
      fuse_create_in create;
      request_kills_suidgid = ArgumentOf(request, length, &create) &&
                              (create.open_flags & FUSE_OPEN_KILL_SUIDGID) != 0;
      break;
    }
    default:
      break;
  }
}

ssize_t ReadRequest(int fd, void* buffer, size_t length, void*) {
  ssize_t n = read(fd, buffer, length);
  if (n > 0) {
    NoteRequest(static_cast<const char*>(buffer), static_cast<size_t>(n));
  } else {
    request_kills_suidgid = false;
  }
  return n;
}

ssize_t WriteReply(int fd, iovec* iov, int count, void*) {
  const uint64_t init_unique = init_offering_v2.load();
  fuse_init_out init;  // outlives the writev below
  if (init_unique != 0 && count >= 2 && iov[0].iov_len >= sizeof(fuse_out_header) &&
      iov[1].iov_len >= offsetof(fuse_init_out, flags) + sizeof(init.flags) &&
      iov[1].iov_len <= sizeof(init)) {
    fuse_out_header header;
    memcpy(&header, iov[0].iov_base, sizeof(header));
    if (header.unique == init_unique && header.error == 0) {
      memcpy(&init, iov[1].iov_base, iov[1].iov_len);
      init.flags |= FUSE_HANDLE_KILLPRIV_V2;
      iov[1].iov_base = &init;
      init_offering_v2 = 0;
      v2_negotiated = true;
    }
  }
  return writev(fd, iov, count);
}

}  // namespace

int InstallWireHooks(fuse_session* session) {
  static const fuse_custom_io io = {
      .writev = WriteReply,
      .read = ReadRequest,
      .splice_receive = nullptr,
      .splice_send = nullptr,
  };
  return fuse_session_custom_io(session, &io, fuse_session_fd(session));
}

bool CurrentRequestKillsSuidgid() { return request_kills_suidgid; }

bool KillprivV2Negotiated() { return v2_negotiated.load(); }

}  // namespace cairn
