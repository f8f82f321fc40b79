#include "cache/writeback_journal.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "backend/base/coding.h"
#include "backend/base/crc32c.h"
#include "backend/base/files.h"
#include "backend/base/fs_error.h"
#include "backend/base/log.h"

namespace cairn {
namespace {

constexpr char kSegmentMagic[8] = {'C', 'A', 'I', 'R', 'N', 'J', 'N', 'L'};
constexpr uint32_t kJournalVersion = 1;
constexpr size_t kSegmentHeaderBytes = 64;
constexpr size_t kVolumeIdBytes = 32;
constexpr uint32_t kRecordMagic = 0x4352'4A43;  // "CJRC" little-endian
constexpr size_t kRecordHeaderBytes = 40;
constexpr uint32_t kRecordTypeWrite = 1;
constexpr uint32_t kRecordTypeTruncate = 2;

bool KnownRecord(uint32_t type, uint64_t length) {
  return type == kRecordTypeWrite || (type == kRecordTypeTruncate && length == 0);
}

std::string SegmentName(uint64_t number) {
  return absl::StrFormat("seg-%016x.jnl", number);
}

bool ParseSegmentName(const std::string& name, uint64_t* number) {
  return name.size() == 4 + 16 + 4 && name.compare(0, 4, "seg-") == 0 &&
         name.compare(20, 4, ".jnl") == 0 &&
         ParseHex(std::string_view(name).substr(4, 16), number);
}

std::string PaddedVolumeId(const std::string& id) {
  std::string out = id.substr(0, kVolumeIdBytes);
  out.resize(kVolumeIdBytes, '\0');
  return out;
}

std::string EncodeSegmentHeader(uint64_t number, const std::string& volume_id) {
  std::string header(kSegmentMagic, sizeof(kSegmentMagic));
  PutFixed32(&header, kJournalVersion);
  PutFixed32(&header, 0);
  PutFixed64(&header, number);
  header += PaddedVolumeId(volume_id);
  PutFixed32(&header, 0);
  PutFixed32(&header, Crc32c(header));
  return header;
}

// The record's bytes: header and data, checksummed.
std::string EncodeRecord(uint64_t seq, InodeId ino, uint64_t offset,
                         std::string_view data, uint32_t type) {
  std::string out;
  out.reserve(kRecordHeaderBytes + data.size());
  PutFixed32(&out, kRecordMagic);
  PutFixed32(&out, 0);  // checksum, filled in below
  PutFixed64(&out, seq);
  PutFixed64(&out, ino);
  PutFixed64(&out, offset);
  PutFixed32(&out, static_cast<uint32_t>(data.size()));
  PutFixed32(&out, type);
  out.append(data);
  uint32_t crc = Crc32c(std::string_view(out).substr(8));
  std::string crc_bytes;
  PutFixed32(&crc_bytes, crc);
  out.replace(4, 4, crc_bytes);
  return out;
}

struct Segment {
  uint64_t number = 0;
  std::string path;
  std::unique_ptr<File> file;
  uint64_t size = 0;         // bytes written, header included
  uint64_t synced_size = 0;  // bytes known durable
  bool dir_synced = false;   // its directory entry is durable
  bool sealed = false;       // no more appends
  bool failed = false;       // a sync failed: nothing in it is trusted durable
  bool previous_run = false; // found at Open, to be replayed
  bool removed = false;      // reclaimed: its file is closed and deleted
  uint64_t refs = 0;
};

}  // namespace

class WritebackJournal::Impl {
 public:
  Impl(Env* env, const JournalOptions& options, uint64_t first_seq)
      : env_(env), options_(options), next_seq_(first_seq) {}

  ~Impl() {
    absl::MutexLock lock(&mu_);
    for (auto& [number, segment] : segments_) {
      if (segment->file) segment->file->Close().IgnoreError();
    }
  }

  absl::Status Load() {
    // Durably: a journal directory that vanishes in a power cut takes every
    // fsynced record in it along.
    if (!options_.read_only) {
      if (absl::Status s = CreateDirs(env_, options_.dir); !s.ok()) return s;
    }
    absl::StatusOr<std::vector<std::string>> names = env_->ListDir(options_.dir);
    if (options_.read_only && !names.ok() && IsNotFoundError(names.status())) {
      return absl::OkStatus();  // no journal: nothing to replay
    }
    if (!names.ok()) return names.status();
    absl::MutexLock lock(&mu_);
    uint64_t highest = 0;
    for (const std::string& name : *names) {
      uint64_t number;
      if (!ParseSegmentName(name, &number)) continue;
      highest = std::max(highest, number);
      auto segment = std::make_shared<Segment>();
      segment->number = number;
      segment->path = Path(number);
      absl::StatusOr<std::unique_ptr<File>> file =
          env_->Open(segment->path, OpenMode::kRead);
      if (!file.ok()) return file.status();
      absl::StatusOr<uint64_t> size = (*file)->Size();
      if (!size.ok()) return size.status();
      absl::StatusOr<std::string> header =
          (*file)->PRead(0, kSegmentHeaderBytes);
      if (!header.ok()) return header.status();
      absl::Status valid = CheckHeader(*header, number, segment->path);
      if (!valid.ok()) {
        // Created but never finished (a crash right after creating it), or
        // a header a power cut left as zeros (the blocks were allocated, the
        // data never reached them). Either way no sync of the segment ever
        // completed, since a sync makes the header durable with the records
        // after it: nothing in it was acknowledged as durable.
        const bool never_synced = header->size() < kSegmentHeaderBytes ||
                                  header->find_first_not_of('\0') == std::string::npos;
        if (never_synced) {
          (*file)->Close().IgnoreError();
          LogWarning("journal segment %s has %s header, so it was never synced; treating it "
                     "as never written and %s",
                     segment->path,
                     header->size() < kSegmentHeaderBytes ? "no complete" : "an all-zero",
                     options_.read_only ? "leaving it to the next read-write mount"
                                        : "removing it");
          if (!options_.read_only) {
            if (absl::Status s = env_->Remove(segment->path); !s.ok()) return s;
          }
          continue;
        }
        return valid;
      }
      segment->file = std::move(*file);
      segment->size = segment->synced_size = *size;
      segment->dir_synced = true;
      segment->sealed = true;
      segment->previous_run = true;
      segments_[number] = segment;
    }
    next_segment_ = highest + 1;
    if (options_.read_only) return absl::OkStatus();
    absl::Status opened = OpenNewSegmentLocked();
    if (GetFsErrorKind(opened) == FsErrorKind::kNoSpace) {
      // A full cache disk must not refuse the mount: what is here is
      // replayed, and writes go straight to blobs until an append finds
      // room for a new segment.
      LogWarning("no room for a new writeback journal segment in %s (%s); writes go "
                 "straight to blobs until there is",
                 options_.dir, opened.message());
      return absl::OkStatus();
    }
    return opened;
  }

  absl::StatusOr<ReplayStats> Replay(
      const std::function<absl::Status(const JournalRecord&)>& apply) {
    std::vector<std::shared_ptr<Segment>> old;
    {
      absl::MutexLock lock(&mu_);
      for (auto& [number, segment] : segments_) {
        if (segment->previous_run) old.push_back(segment);
      }
    }
    ReplayStats stats;
    uint64_t last_seq = 0;
    for (const std::shared_ptr<Segment>& segment : old) {
      stats.segments++;
      uint64_t pos = kSegmentHeaderBytes;
      bool damaged = false;
      while (pos < segment->size) {
        absl::StatusOr<std::optional<JournalRecord>> record =
            ReadRecord(*segment, pos, last_seq);
        if (!record.ok()) return record.status();
        if (!record->has_value()) {
          // Damage, or the end a crash tore: go on at the next intact record
          // (magic, length and checksum all hold), if there is one.
          absl::StatusOr<std::optional<uint64_t>> next = FindRecord(*segment, pos + 1, last_seq);
          if (!next.ok()) return next.status();
          if (!next->has_value()) {
            // Nothing intact after it: a torn end (a power cut during the
            // last appends, never fsynced) looks the same as damage there.
            stats.torn_bytes += segment->size - pos;
            if (!damaged) stats.damaged_segments++;
            LogWarning("journal segment %s ends in %d bytes that are no intact record (torn "
                       "by a crash, or damaged) at byte %d; nothing follows them",
                       segment->path, segment->size - pos, pos);
            break;
          }
          absl::StatusOr<std::optional<JournalRecord>> after =
              ReadRecord(*segment, **next, last_seq);
          if (!after.ok()) return after.status();
          const uint64_t lost = (*after)->seq - last_seq - 1;
          if (std::optional<DamagedWrite> write =
                  DamagedRecordAt(*segment, pos, **next, last_seq, (*after)->seq)) {
            stats.damaged_writes.push_back(*write);
          }
          stats.damaged_bytes += **next - pos;
          stats.lost_records += lost;
          if (!damaged) stats.damaged_segments++;
          damaged = true;
          LogWarning("journal segment %s: bytes %d to %d are damaged (%d records lost); "
                     "replay goes on with the intact records after them",
                     segment->path, pos, **next, lost);
          pos = **next;
          continue;
        }
        JournalRecord& r = **record;
        pos += kRecordHeaderBytes + r.data.size();
        last_seq = r.seq;
        stats.records++;
        stats.bytes += r.data.size();
        if (absl::Status s = apply(r); !s.ok()) return s;
      }
    }
    return stats;
  }

  absl::StatusOr<Appended> Append(InodeId ino, uint64_t offset, std::string_view data,
                                  uint32_t type = kRecordTypeWrite) {
    if (data.size() > kMaxRecordData) {
      return FsError(FsErrorKind::kInvalid, "journal record too large");
    }
    if (options_.read_only) {
      return FsError(FsErrorKind::kReadOnly, "the writeback journal is open read-only");
    }
    absl::MutexLock lock(&mu_);
    const uint64_t length = kRecordHeaderBytes + data.size();
    if (!active_ || active_->failed ||
        (active_->size > kSegmentHeaderBytes &&
         active_->size + length > options_.segment_bytes)) {
      if (absl::Status s = OpenNewSegmentLocked(); !s.ok()) return s;
    }
    uint64_t seq = next_seq_;
    std::string bytes = EncodeRecord(seq, ino, offset, data, type);
    if (absl::Status s = active_->file->PWrite(active_->size, bytes); !s.ok()) {
      // Part of the record may be on disk; it fails its checksum at replay.
      // Later records must not follow a hole, so start a new segment.
      active_->failed = true;
      return s;
    }
    next_seq_++;
    active_->size += length;
    active_->refs++;
    appended_records_++;
    return Appended{seq, active_->number};
  }

  void Ref(uint64_t segment, uint64_t count) {
    absl::MutexLock lock(&mu_);
    auto it = segments_.find(segment);
    if (it != segments_.end()) it->second->refs += count;
  }

  void Unref(uint64_t segment, uint64_t count) {
    absl::MutexLock lock(&mu_);
    auto it = segments_.find(segment);
    if (it == segments_.end()) return;
    it->second->refs -= std::min(count, it->second->refs);
  }

  absl::Status Sync() {
    if (options_.read_only) return absl::OkStatus();  // nothing was written
    // Everything appended before this point; later appends are not waited for.
    std::vector<std::pair<std::shared_ptr<Segment>, uint64_t>> targets;
    {
      absl::MutexLock lock(&mu_);
      for (auto& [number, segment] : segments_) {
        if (segment->failed) continue;
        if (segment->size > segment->synced_size || !segment->dir_synced) {
          targets.emplace_back(segment, segment->size);
        }
      }
    }
    if (targets.empty()) return absl::OkStatus();
    // One sync at a time: a caller that waited here usually finds its
    // records already covered by the sync it waited for.
    absl::MutexLock sync_lock(&sync_mu_);
    absl::Status first;
    bool need_dir_sync = false;
    for (auto& [segment, target] : targets) {
      {
        absl::MutexLock lock(&mu_);
        // Reclaimed while this sync waited for its turn: every record in it
        // is committed and durable elsewhere, and its file is closed.
        if (segment->removed) continue;
        if (segment->failed) {
          if (first.ok()) first = FailedError(*segment);
          continue;
        }
        if (!segment->dir_synced) need_dir_sync = true;
        if (segment->synced_size >= target) continue;
      }
      absl::Status s = segment->file->Sync();
      absl::MutexLock lock(&mu_);
      syncs_++;
      if (!s.ok()) {
        sync_failures_++;
        segment->failed = true;
        LogError("journal sync of %s failed: %s; its records are written to "
                 "blobs instead", segment->path, s.ToString());
        if (first.ok()) first = s;
        continue;
      }
      segment->synced_size = std::max(segment->synced_size, target);
    }
    if (need_dir_sync && first.ok()) {
      absl::Status s = env_->SyncDir(options_.dir);
      if (!s.ok()) return s;
      absl::MutexLock lock(&mu_);
      for (auto& [segment, target] : targets) segment->dir_synced = true;
    }
    return first;
  }

  bool SegmentFailed(uint64_t number) {
    absl::MutexLock lock(&mu_);
    auto it = segments_.find(number);
    return it != segments_.end() && it->second->failed;
  }

  absl::Status Roll() {
    if (options_.read_only) return absl::OkStatus();
    absl::MutexLock lock(&mu_);
    if (active_ && active_->size <= kSegmentHeaderBytes && !active_->failed) {
      return absl::OkStatus();
    }
    return OpenNewSegmentLocked();
  }

  std::vector<uint64_t> Reclaimable() {
    absl::MutexLock lock(&mu_);
    std::vector<uint64_t> out;
    for (auto& [number, segment] : segments_) {
      if (segment.get() != active_.get() && segment->refs == 0) {
        out.push_back(number);
      }
    }
    return out;
  }

  absl::Status Remove(const std::vector<uint64_t>& numbers) {
    if (options_.read_only) return absl::OkStatus();  // the next read-write mount does it
    for (uint64_t number : numbers) {
      std::shared_ptr<Segment> segment;
      {
        absl::MutexLock lock(&mu_);
        auto it = segments_.find(number);
        if (it == segments_.end() || it->second.get() == active_.get() ||
            it->second->refs != 0) {
          continue;
        }
        segment = it->second;
        segments_.erase(it);
      }
      // A sync running on it finishes first (sync_mu_); one that picked it
      // and waits sees `removed` and skips it, rather than sync a closed
      // file and report a failure that did not happen.
      absl::MutexLock sync_lock(&sync_mu_);
      {
        absl::MutexLock lock(&mu_);
        segment->removed = true;
      }
      segment->file->Close().IgnoreError();
      if (absl::Status s = env_->Remove(segment->path); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  Stats GetStats() {
    absl::MutexLock lock(&mu_);
    Stats stats;
    for (auto& [number, segment] : segments_) stats.bytes += segment->size;
    stats.segments = segments_.size();
    stats.appended_records = appended_records_;
    stats.syncs = syncs_;
    stats.sync_failures = sync_failures_;
    return stats;
  }

 private:
  std::string Path(uint64_t number) const {
    return options_.dir + "/" + SegmentName(number);
  }

  absl::Status CheckHeader(std::string_view header, uint64_t number,
                           const std::string& path) {
    auto bad = [&](const std::string& why) {
      return FsError(FsErrorKind::kIo,
                     absl::StrCat("journal segment ", path, " ", why));
    };
    if (header.size() < kSegmentHeaderBytes) return bad("is shorter than its header");
    if (header.substr(0, 8) != std::string_view(kSegmentMagic, 8)) {
      return bad("is not a cairn journal segment (bad magic); move it out of "
                 "the cache directory");
    }
    if (Crc32c(header.substr(0, 60)) != DecodeFixed32(header.data() + 60)) {
      return bad("has a corrupt header; move it out of the cache directory "
                 "(its unflushed writes are lost)");
    }
    uint32_t version = DecodeFixed32(header.data() + 8);
    if (version != kJournalVersion) {
      return bad(absl::StrCat("has journal format version ", version,
                              ", which this cairn does not know; use the "
                              "cairn that wrote it"));
    }
    if (DecodeFixed64(header.data() + 16) != number) {
      return bad("does not match its file name");
    }
    std::string id(header.substr(24, kVolumeIdBytes));
    if (id != PaddedVolumeId(options_.volume_id)) {
      return bad(absl::StrCat(
          "belongs to another volume (", id.c_str(),
          "); each volume needs its own cache_dir: point this volume's "
          "cache_dir at an empty directory"));
    }
    return absl::OkStatus();
  }

  // The write a damaged stretch [pos, next) held, when its header still
  // says so: the magic and type are right, its length ends it exactly where
  // the next intact record starts, and its sequence number is the one
  // missing between its neighbours. Then the damage is in the data, and the
  // header names the file that lost the write. Otherwise (or when the header
  // cannot even be read) nullopt: the stretch cannot be pinned on a file.
  // (A damaged truncate never is: it has no data, so its damage is in its
  // header.)
  std::optional<DamagedWrite> DamagedRecordAt(Segment& segment, uint64_t pos, uint64_t next,
                                              uint64_t last_seq, uint64_t next_seq) {
    if (next - pos < kRecordHeaderBytes || next_seq != last_seq + 2) return std::nullopt;
    absl::StatusOr<std::string> header = segment.file->PRead(pos, kRecordHeaderBytes);
    if (!header.ok() || header->size() < kRecordHeaderBytes) return std::nullopt;
    const char* h = header->data();
    const uint64_t length = DecodeFixed32(h + 32);
    if (DecodeFixed32(h) != kRecordMagic || DecodeFixed32(h + 36) != kRecordTypeWrite ||
        pos + kRecordHeaderBytes + length != next || DecodeFixed64(h + 8) != last_seq + 1) {
      return std::nullopt;
    }
    return DamagedWrite{DecodeFixed64(h + 16), DecodeFixed64(h + 24), length, last_seq + 1};
  }

  // Where the first intact record at or after `from` starts, or nullopt.
  // Reads the rest of the segment once, a window at a time.
  absl::StatusOr<std::optional<uint64_t>> FindRecord(Segment& segment, uint64_t from,
                                                     uint64_t last_seq) {
    constexpr uint64_t kWindow = 1 << 20;
    std::string magic;
    PutFixed32(&magic, kRecordMagic);
    for (uint64_t start = from; start + 4 <= segment.size; start += kWindow) {
      // Overlap by 3 bytes so a magic across the windows' edge is seen.
      const uint64_t length = std::min<uint64_t>(kWindow + 3, segment.size - start);
      absl::StatusOr<std::string> window = segment.file->PRead(start, length);
      if (!window.ok()) return window.status();
      for (size_t at = window->find(magic); at != std::string::npos && at < kWindow;
           at = window->find(magic, at + 1)) {
        absl::StatusOr<std::optional<JournalRecord>> record =
            ReadRecord(segment, start + at, last_seq);
        if (!record.ok()) return record.status();
        if (record->has_value()) return std::optional<uint64_t>(start + at);
      }
    }
    return std::optional<uint64_t>();
  }

  // The record at `pos`, or nullopt if it is torn or damaged.
  absl::StatusOr<std::optional<JournalRecord>> ReadRecord(Segment& segment,
                                                          uint64_t pos,
                                                          uint64_t last_seq) {
    std::optional<JournalRecord> none;
    if (segment.size - pos < kRecordHeaderBytes) return none;
    absl::StatusOr<std::string> header = segment.file->PRead(pos, kRecordHeaderBytes);
    if (!header.ok()) return header.status();
    if (header->size() < kRecordHeaderBytes) return none;
    const char* h = header->data();
    uint32_t length = DecodeFixed32(h + 32);
    if (DecodeFixed32(h) != kRecordMagic || !KnownRecord(DecodeFixed32(h + 36), length) ||
        length > kMaxRecordData ||
        segment.size - pos - kRecordHeaderBytes < length) {
      return none;
    }
    absl::StatusOr<std::string> data =
        segment.file->PRead(pos + kRecordHeaderBytes, length);
    if (!data.ok()) return data.status();
    if (data->size() < length) return none;
    uint32_t crc = Crc32cExtend(Crc32c(std::string_view(*header).substr(8)), *data);
    if (crc != DecodeFixed32(h + 4)) return none;
    JournalRecord record;
    record.seq = DecodeFixed64(h + 8);
    if (record.seq <= last_seq) return none;
    record.ino = DecodeFixed64(h + 16);
    record.offset = DecodeFixed64(h + 24);
    record.truncate = DecodeFixed32(h + 36) == kRecordTypeTruncate;
    record.data = std::move(*data);
    record.segment = segment.number;
    return std::optional<JournalRecord>(std::move(record));
  }

  absl::Status OpenNewSegmentLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto segment = std::make_shared<Segment>();
    segment->number = next_segment_++;
    segment->path = Path(segment->number);
    absl::StatusOr<std::unique_ptr<File>> file =
        env_->Open(segment->path, OpenMode::kCreateExclusive);
    if (!file.ok()) return file.status();
    std::string header = EncodeSegmentHeader(segment->number, options_.volume_id);
    if (absl::Status s = (*file)->PWrite(0, header); !s.ok()) {
      (*file)->Close().IgnoreError();
      env_->Remove(segment->path).IgnoreError();
      return s;
    }
    segment->file = std::move(*file);
    segment->size = header.size();
    if (active_) active_->sealed = true;
    active_ = segment;
    segments_[segment->number] = segment;
    return absl::OkStatus();
  }

  static absl::Status FailedError(const Segment& segment) {
    return FsError(FsErrorKind::kIo,
                   absl::StrCat("an earlier sync of journal segment ",
                                segment.path, " failed"));
  }

  Env* const env_;
  const JournalOptions options_;

  absl::Mutex mu_;
  std::map<uint64_t, std::shared_ptr<Segment>> segments_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<Segment> active_ ABSL_GUARDED_BY(mu_);
  uint64_t next_segment_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_);
  uint64_t appended_records_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t syncs_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t sync_failures_ ABSL_GUARDED_BY(mu_) = 0;

  absl::Mutex sync_mu_ ABSL_ACQUIRED_AFTER(mu_);
};

uint64_t WritebackJournal::CountSegments(const std::string& dir) {
  absl::StatusOr<std::vector<std::string>> names = Env::Default()->ListDir(dir);
  if (!names.ok()) return 0;
  uint64_t count = 0;
  for (const std::string& name : *names) {
    uint64_t number;
    if (ParseSegmentName(name, &number)) count++;
  }
  return count;
}

absl::StatusOr<std::unique_ptr<WritebackJournal>> WritebackJournal::Open(
    Env* env, const JournalOptions& options, uint64_t first_seq) {
  auto impl = std::make_unique<Impl>(env, options, first_seq);
  if (absl::Status s = impl->Load(); !s.ok()) return s;
  return std::unique_ptr<WritebackJournal>(new WritebackJournal(std::move(impl)));
}

WritebackJournal::WritebackJournal(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}
WritebackJournal::~WritebackJournal() = default;

absl::StatusOr<WritebackJournal::ReplayStats> WritebackJournal::Replay(
    const std::function<absl::Status(const JournalRecord&)>& apply) {
  return impl_->Replay(apply);
}
absl::StatusOr<WritebackJournal::Appended> WritebackJournal::Append(
    InodeId ino, uint64_t offset, std::string_view data) {
  return impl_->Append(ino, offset, data);
}
void WritebackJournal::Ref(uint64_t segment, uint64_t count) {
  impl_->Ref(segment, count);
}
void WritebackJournal::Unref(uint64_t segment, uint64_t count) {
  impl_->Unref(segment, count);
}
absl::Status WritebackJournal::Sync() { return impl_->Sync(); }
absl::StatusOr<WritebackJournal::Appended> WritebackJournal::AppendTruncate(InodeId ino,
                                                                            uint64_t size) {
  return impl_->Append(ino, size, "", kRecordTypeTruncate);
}
bool WritebackJournal::SegmentFailed(uint64_t segment) {
  return impl_->SegmentFailed(segment);
}
std::vector<uint64_t> WritebackJournal::Reclaimable() {
  return impl_->Reclaimable();
}
absl::Status WritebackJournal::Roll() { return impl_->Roll(); }
absl::Status WritebackJournal::Remove(const std::vector<uint64_t>& segments) {
  return impl_->Remove(segments);
}
WritebackJournal::Stats WritebackJournal::GetStats() { return impl_->GetStats(); }

}  // namespace cairn
