// A private PostgreSQL 15 for tests, started by tests/pg-server.sh: its own
// temp directory, 127.0.0.1 on a free port, trust authentication, database
// "cairn"; stopped by its PID and removed with the object (and by the
// script's watcher if the test binary dies first).
#pragma once

#include <memory>
#include <string>

namespace cairn {

class PgServer {
 public:
  // nullptr with `why_not` set when it cannot start; `*missing` tells
  // whether that is because the server binaries are not installed (the one
  // case a test may skip: CI installs them).
  static std::unique_ptr<PgServer> Start(std::string* why_not, bool* missing);
  ~PgServer();
  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;

  // "postgresql://cairn@127.0.0.1:PORT/cairn"
  const std::string& url() const { return url_; }

  // Stops the server: a fast shutdown (sessions aborted, checkpoint), or
  // with `crash`, an immediate one that leaves recovery to the next start.
  bool Stop(bool crash, std::string* why_not);
  // Starts it again on the same data and port.
  bool Restart(std::string* why_not);

  // Creates database `name` (any characters); its URL, or "" with `error`
  // set.
  std::string CreateDatabase(const std::string& name, std::string* error);

 private:
  PgServer() = default;
  // Runs the script with `args`; its output in `*out`, its exit status
  // returned (-1 if it could not run).
  static int RunScript(const std::string& args, std::string* out);

  std::string dir_;
  std::string url_;
};

// One server for the whole test binary (each test making its own
// database), started at the first call and stopped at exit; nullptr as for
// Start.
PgServer* SharedPgServer(std::string* why_not, bool* missing);

// For a test's SetUp: a new, empty database on the shared server, named
// `prefix` and a number no other call in this binary gets. Its URL; or ""
// once the test is skipped (the server binaries are not installed, the one
// case a test may skip: CI installs them) or has failed fatally (the
// server did not start, the database could not be made), and the caller
// returns. `server`, if given, is set to the shared server (or nullptr).
std::string FreshPgDatabase(const std::string& prefix, PgServer** server = nullptr);

// For a test that needs a server of its own (one it stops or restarts):
// PgServer::Start, or nullptr once the test is skipped or has failed
// fatally, as FreshPgDatabase says.
std::unique_ptr<PgServer> StartPgServerForTest();

}  // namespace cairn
