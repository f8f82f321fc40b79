// A real cairn mount in a private temp directory, for integration tests.
//
// Every test gets its own volume and mountpoint under /tmp/cairn-it-XXXXXX.
// TearDown unmounts even when the test failed, and removes the directory only
// once nothing is mounted there (never rm -rf through a live mount).
//
// CAIRN_IT_NATIVE=1 skips cairn altogether and runs the test in a plain
// directory of the host filesystem: a check that the test itself is right.
#pragma once

#include <string>

#include "gtest/gtest.h"

namespace cairn_it {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// Runs `command` with /bin/sh, bounded by `timeout_seconds`.
CommandResult Sh(const std::string& command, int timeout_seconds = 300);

// The cairn binary under test (CAIRN_BINARY, else "cairn" on PATH).
std::string CairnBinary();

bool NativeMode();

// Single-quotes `text` for the shell.
std::string Quote(const std::string& text);

// True if `path` is a mountpoint in /proc/self/mountinfo.
bool IsMounted(const std::string& path);

class MountTest : public ::testing::Test {
 protected:
  void SetUp() override;
  void TearDown() override;

  // Unmounts with `cairn umount` and mounts again.
  void Remount();
  void Mount();
  void Unmount();

  // Absolute path of `relative` inside the mount.
  std::string P(const std::string& relative) const {
    return mount_dir_ + "/" + relative;
  }

  std::string work_dir_;    // private temp dir
  std::string volume_dir_;  // work_dir_/volume
  std::string mount_dir_;   // work_dir_/mnt (or the native dir)
};

}  // namespace cairn_it
