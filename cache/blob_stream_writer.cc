#include "cache/blob_stream_writer.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"

namespace cairn {

BlobStreamWriter::BlobStreamWriter(NamespaceStore& ns, BlobStore& blobs, InodeId ino,
                                   Options options)
    : ns_(ns), blobs_(blobs), ino_(ino), options_(std::move(options)) {}

BlobStreamWriter::~BlobStreamWriter() {
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
    abandoned_ = !finished_;
    queued_.clear();  // never stored: nothing to undo
  }
  for (std::thread& thread : threads_) thread.join();
}

absl::Status BlobStreamWriter::FirstError() {
  absl::MutexLock lock(&mu_);
  return error_;
}

absl::Status BlobStreamWriter::Append(std::string_view data) {
  if (finished_) return FsError(FsErrorKind::kInvalid, "append to a finished stream");
  if (data.size() > kMaxFileBytes - std::min(appended_, kMaxFileBytes)) {
    return FsError(FsErrorKind::kFileTooBig, "write past the file size limit");
  }
  while (!data.empty()) {
    if (!filling_.buffer) {
      {
        absl::MutexLock lock(&mu_);
        if (!error_.ok()) return error_;
        if (!spare_.empty()) {
          filling_.buffer = std::move(spare_.back());
          spare_.pop_back();
        }
      }
      if (!filling_.buffer) filling_.buffer = AcquireLargeBuffer(kMaxBlobBytes);
      if (!filling_.buffer) return FsError(FsErrorKind::kIo, "out of memory for a blob");
      filling_.file_offset = appended_;
      filling_.length = 0;
    }
    const uint64_t n = std::min<uint64_t>(data.size(), kMaxBlobBytes - filling_.length);
    memcpy(filling_.buffer.data() + filling_.length, data.data(), n);
    filling_.length += n;
    appended_ += n;
    data.remove_prefix(n);
    if (filling_.length == kMaxBlobBytes) {
      if (absl::Status s = Submit(); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status BlobStreamWriter::Submit() {
  absl::MutexLock lock(&mu_);
  auto room = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return !error_.ok() ||
           static_cast<int>(queued_.size()) + storing_ < options_.stores_in_flight;
  };
  mu_.Await(absl::Condition(&room));
  if (!error_.ok()) return error_;
  queued_.push_back(std::move(filling_));
  filling_ = Piece{};
  // One thread per blob in flight, started as the blobs come: a file of one
  // blob or less never starts one (Finish stores it).
  if (static_cast<int>(threads_.size()) < options_.stores_in_flight &&
      static_cast<int>(threads_.size()) < storing_ + static_cast<int>(queued_.size())) {
    threads_.emplace_back([this] { StoreLoop(); });
  }
  return absl::OkStatus();
}

void BlobStreamWriter::StoreLoop() {
  absl::MutexLock lock(&mu_);
  for (;;) {
    auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !queued_.empty() || closing_;
    };
    mu_.Await(absl::Condition(&ready));
    if (queued_.empty()) return;  // closing, and nothing left
    Piece piece = std::move(queued_.front());
    queued_.pop_front();
    storing_++;
    absl::Status stored = error_.ok() ? absl::OkStatus() : error_;
    if (stored.ok()) {
      mu_.Unlock();
      stored = Store(piece);
      mu_.Lock();
    }
    storing_--;
    if (!stored.ok() && error_.ok()) error_ = stored;
    spare_.push_back(std::move(piece.buffer));
  }
}

absl::Status BlobStreamWriter::Store(const Piece& piece) {
  if (options_.room_for_data) {
    if (absl::Status room = options_.room_for_data(0, piece.length); !room.ok()) return room;
  }
  absl::StatusOr<BlobId> id = ns_.AllocateBlobIds(1);
  if (!id.ok()) return id.status();
  const std::string_view data(piece.buffer.data(), piece.length);
  absl::StatusOr<BlobInfo> info = blobs_.Put(*id, data);
  if (!info.ok()) return info.status();
  if (options_.on_blob_stored) options_.on_blob_stored(piece.length);
  bool abandoned;
  {
    absl::MutexLock lock(&mu_);
    abandoned = abandoned_;
  }
  absl::Status committed = absl::CancelledError("the stream was abandoned");
  if (!abandoned) {
    Extent extent;
    extent.file_offset = piece.file_offset;
    extent.length = piece.length;
    extent.blob_id = *id;
    const NewBlob blob{*id, info->length, info->crc32c};
    committed = ns_.CommitWrite(ino_, {&blob, 1}, {&extent, 1}).status();
  }
  // Nothing references the blob unless the commit took it. Only the
  // namespace saying the file is gone makes a failed commit safe to undo
  // here; other failures leave the blob to the next mount's sweep.
  if (abandoned || (!committed.ok() && absl::IsNotFound(ns_.GetAttr(ino_).status()))) {
    if (absl::Status s = blobs_.Delete(*id); !s.ok()) {
      LogWarning("could not delete blob %d of an abandoned upload: %s (the next mount's sweep "
                 "does)", *id, s.ToString());
    }
  }
  return committed;
}

absl::Status BlobStreamWriter::Finish() {
  if (finished_) return FsError(FsErrorKind::kInvalid, "a stream finished twice");
  if (absl::Status s = FirstError(); !s.ok()) return s;
  if (filling_.length > 0) {
    if (appended_ <= options_.inline_threshold_bytes) {
      // The whole file, small: inline in the namespace.
      Extent extent;
      extent.file_offset = 0;
      extent.length = filling_.length;
      extent.inline_data.assign(filling_.buffer.data(), filling_.length);
      if (absl::Status s = ns_.CommitWrite(ino_, {}, {&extent, 1}).status(); !s.ok()) return s;
    } else if (threads_.empty()) {
      // A file of one blob: stored here rather than on a thread of its own.
      absl::Status stored = Store(filling_);
      filling_ = Piece{};
      if (!stored.ok()) return stored;
    } else if (absl::Status s = Submit(); !s.ok()) {
      return s;
    }
  }
  {
    absl::MutexLock lock(&mu_);
    closing_ = true;
    auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return queued_.empty() && storing_ == 0;
    };
    mu_.Await(absl::Condition(&idle));
    if (!error_.ok()) return error_;
    finished_ = true;
  }
  if (options_.touch_clock != nullptr) {
    SetAttrRequest touch;
    touch.mtime = touch.ctime = options_.touch_clock->NowTimespec();
    if (absl::Status s = ns_.SetAttr(ino_, touch).status(); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace cairn
