#include "tests/support/pg_server.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>

#include "gtest/gtest.h"

namespace cairn {

namespace {

const char* Script() {
  const char* script = getenv("CAIRN_PG_SERVER_SCRIPT");
#ifdef CAIRN_DEFAULT_PG_SERVER_SCRIPT
  if (script == nullptr) script = CAIRN_DEFAULT_PG_SERVER_SCRIPT;
#endif
  return script;
}

std::string LastLine(const std::string& out) {
  std::string s = out;
  while (!s.empty() && s.back() == '\n') s.pop_back();
  size_t nl = s.rfind('\n');
  return nl == std::string::npos ? s : s.substr(nl + 1);
}

// A server that did not start skips the test only when its binaries are
// missing (CI installs them: there it fails). GTEST_SKIP and FAIL return
// from the function they are in, which must return void.
void SkipOrFail(bool missing, const std::string& why_not) {
  if (missing) GTEST_SKIP() << why_not;
  FAIL() << why_not;
}

}  // namespace

int PgServer::RunScript(const std::string& args, std::string* out) {
  std::string cmd = std::string("bash '") + Script() + "' " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return -1;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) out->append(buf, n);
  int status = pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::unique_ptr<PgServer> PgServer::Start(std::string* why_not, bool* missing) {
  *missing = false;
  if (Script() == nullptr) {
    *why_not = "no tests/pg-server.sh (CAIRN_PG_SERVER_SCRIPT)";
    return nullptr;
  }
  char templ[] = "/tmp/cairn-pg-XXXXXX";
  if (mkdtemp(templ) == nullptr) {
    *why_not = "mkdtemp failed";
    return nullptr;
  }
  std::unique_ptr<PgServer> server(new PgServer());
  server->dir_ = templ;
  std::string out;
  int rc = RunScript("start '" + server->dir_ + "' " + std::to_string(getpid()), &out);
  if (rc != 0) {
    *missing = rc == 77;
    *why_not = "tests/pg-server.sh start failed (exit " + std::to_string(rc) + "): " + out;
    return nullptr;  // the destructor removes the directory
  }
  server->url_ = LastLine(out);
  return server;
}

bool PgServer::Stop(bool crash, std::string* why_not) {
  std::string out;
  int rc = RunScript("stop '" + dir_ + "' " + (crash ? "immediate" : "fast"), &out);
  if (rc != 0) *why_not = "tests/pg-server.sh stop failed: " + out;
  return rc == 0;
}

bool PgServer::Restart(std::string* why_not) {
  std::string out;
  int rc = RunScript("start '" + dir_ + "' " + std::to_string(getpid()), &out);
  if (rc != 0) {
    *why_not = "tests/pg-server.sh start (again) failed: " + out;
    return false;
  }
  return true;
}

std::string PgServer::CreateDatabase(const std::string& name, std::string* error) {
  PGconn* pg = PQconnectdb(url_.c_str());
  std::string url;
  char* quoted = PQstatus(pg) == CONNECTION_OK
                     ? PQescapeIdentifier(pg, name.c_str(), name.size())
                     : nullptr;
  if (quoted == nullptr) {
    *error = std::string("cannot connect to the test server: ") + PQerrorMessage(pg);
  } else {
    PGresult* r = PQexec(pg, (std::string("CREATE DATABASE ") + quoted).c_str());
    if (PQresultStatus(r) == PGRES_COMMAND_OK) {
      url = url_.substr(0, url_.rfind('/') + 1) + name;
    } else {
      *error = std::string("CREATE DATABASE failed: ") + PQresultErrorMessage(r);
    }
    PQclear(r);
    PQfreemem(quoted);
  }
  PQfinish(pg);
  return url;
}

PgServer* SharedPgServer(std::string* why_not, bool* missing) {
  static std::string start_error;
  static bool start_missing = false;
  static std::unique_ptr<PgServer> server = PgServer::Start(&start_error, &start_missing);
  *why_not = start_error;
  *missing = start_missing;
  return server.get();
}

std::string FreshPgDatabase(const std::string& prefix, PgServer** server_out) {
  std::string why_not;
  bool missing = false;
  PgServer* server = SharedPgServer(&why_not, &missing);
  if (server_out != nullptr) *server_out = server;
  if (server == nullptr) {
    SkipOrFail(missing, why_not);
    return "";
  }
  static std::atomic<int> next{0};
  std::string error;
  std::string url = server->CreateDatabase(prefix + std::to_string(next++), &error);
  if (url.empty()) SkipOrFail(/*missing=*/false, error);
  return url;
}

std::unique_ptr<PgServer> StartPgServerForTest() {
  std::string why_not;
  bool missing = false;
  std::unique_ptr<PgServer> server = PgServer::Start(&why_not, &missing);
  if (server == nullptr) SkipOrFail(missing, why_not);
  return server;
}

PgServer::~PgServer() {
  std::string why_not;
  Stop(/*crash=*/true, &why_not);  // also after a start that failed half-way
  std::error_code ec;
  std::filesystem::remove_all(dir_, ec);
}

}  // namespace cairn
