#include "vmm/qmp_commands.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "tests/unit/qmp_fake_target.h"

namespace passage {
namespace {

using json = nlohmann::json;
using testing::FakeTarget;
using testing::OpenFdCount;

class QmpSessionTest : public ::testing::Test {
 protected:
  json Send(const std::string& text, std::vector<UniqueFd> fds = {}) {
    QmpFramer::Frame frame;
    frame.text = text;
    return session_.Handle(frame, std::move(fds));
  }
  json Exec(const std::string& name, json args = nullptr, std::vector<UniqueFd> fds = {}) {
    json msg = {{"execute", name}};
    if (!args.is_null()) msg["arguments"] = std::move(args);
    return Send(msg.dump(), std::move(fds));
  }
  void Negotiate() { ASSERT_EQ(Exec("qmp_capabilities"), json({{"return", json::object()}})); }

  // A pipe: the read end goes to passage, the test keeps the write end.
  UniqueFd Pipe(UniqueFd& write_end) {
    int p[2];
    EXPECT_EQ(pipe2(p, O_CLOEXEC), 0);
    write_end.reset(p[1]);
    return UniqueFd(p[0]);
  }
  static std::vector<UniqueFd> One(UniqueFd fd) {
    std::vector<UniqueFd> v;
    v.push_back(std::move(fd));
    return v;
  }

  FakeTarget target_;
  QmpFdSets fdsets_;
  QmpSession session_{target_, fdsets_, "1.2.3"};
};

json Error(const std::string& cls, const std::string& desc) { return {{"error", {{"class", cls}, {"desc", desc}}}}; }

TEST_F(QmpSessionTest, GreetingAndVersion) {
  EXPECT_EQ(session_.Greeting(),
            json::parse(R"({"QMP": {"version": {"qemu": {"major": 1, "minor": 2, "micro": 3},
                                                 "package": "passage 1.2.3"}, "capabilities": []}})"));
  Negotiate();
  EXPECT_EQ(Exec("query-version")["return"]["qemu"]["minor"], 2);
}

TEST_F(QmpSessionTest, OnlyCapabilitiesBeforeNegotiation) {
  for (const char* name : {"query-status", "quit", "no-such-command"}) {
    EXPECT_EQ(Exec(name), Error("CommandNotFound", "Expecting capabilities negotiation with 'qmp_capabilities'"));
  }
  EXPECT_TRUE(target_.Calls().empty());
  Negotiate();
  EXPECT_EQ(Exec("qmp_capabilities"),
            Error("CommandNotFound", "Capabilities negotiation is already complete, command ignored"));
  EXPECT_EQ(Exec("query-status"), json::parse(R"({"return": {"status": "running", "running": true}})"));
}

TEST_F(QmpSessionTest, CapabilityNotOffered) {
  EXPECT_EQ(Exec("qmp_capabilities", {{"enable", {"oob"}}}), Error("GenericError", "Capability 'oob' not available"));
  EXPECT_FALSE(session_.negotiated());
  EXPECT_EQ(Exec("qmp_capabilities", {{"enable", "oob"}}),
            Error("GenericError", "Invalid parameter type for 'enable', expected: array"));
}

TEST_F(QmpSessionTest, IdIsEchoed) {
  json r = Send(R"({"execute": "qmp_capabilities", "id": "abc"})");
  EXPECT_EQ(r["id"], "abc");
  r = Send(R"({"execute": "nope", "id": {"n": 7}})");
  EXPECT_EQ(r["id"], json({{"n", 7}}));
  EXPECT_EQ(r["error"]["class"], "CommandNotFound");
  EXPECT_EQ(r["error"]["desc"], "The command nope has not been found");
}

TEST_F(QmpSessionTest, MalformedInputGetsAnErrorAndTheSessionGoesOn) {
  Negotiate();
  json r = Send("{\"execute\": ");
  EXPECT_EQ(r["error"]["class"], "GenericError");
  EXPECT_EQ(r["error"]["desc"].get<std::string>().rfind("JSON parse error, ", 0), 0u) << r;
  EXPECT_EQ(Send("[1]"), Error("GenericError", "QMP input must be a JSON object"));
  EXPECT_EQ(Send("42"), Error("GenericError", "QMP input must be a JSON object"));
  EXPECT_EQ(Send("{}"), Error("GenericError", "QMP input lacks member 'execute'"));
  EXPECT_EQ(Send(R"({"execute": 5})"), Error("GenericError", "QMP input member 'execute' must be a string"));
  EXPECT_EQ(Send(R"({"execute": "quit", "arguments": []})"),
            Error("GenericError", "QMP input member 'arguments' must be an object"));
  EXPECT_EQ(Send(R"({"execute": "quit", "bogus": 1})"), Error("GenericError", "QMP input member 'bogus' is unexpected"));
  QmpFramer::Frame deep;
  deep.too_deep = true;
  EXPECT_EQ(session_.Handle(deep, {})["error"]["class"], "GenericError");
  // Invalid UTF-8 inside a string: an error reply, and the reply is valid JSON.
  r = Send("{\"execute\": \"\xff\xfe\"}");
  EXPECT_EQ(r["error"]["class"], "GenericError");
  EXPECT_NO_THROW(json::parse(QmpLine(r)));
  EXPECT_TRUE(target_.Calls().empty());
  EXPECT_EQ(Exec("query-status")["return"]["status"], "running");
}

TEST_F(QmpSessionTest, WrongArgumentsNameTheArgument) {
  Negotiate();
  EXPECT_EQ(Exec("device_del", {{"id", 5}}), Error("GenericError", "Invalid parameter type for 'id', expected: string"));
  EXPECT_EQ(Exec("device_del", json::object()), Error("GenericError", "Parameter 'id' is missing"));
  EXPECT_EQ(Exec("device_del", {{"id", "a"}, {"force", true}}), Error("GenericError", "Parameter 'force' is unexpected"));
  EXPECT_EQ(Exec("add-fd", {{"fdset-id", "1"}}),
            Error("GenericError", "Invalid parameter type for 'fdset-id', expected: integer"));
  EXPECT_EQ(Exec("device_add", {{"id", "x"}}), Error("GenericError", "Parameter 'driver' is missing"));
  EXPECT_EQ(Exec("device_add", {{"driver", "virtio-rng-pci"}, {"filename", json::array()}}),
            Error("GenericError", "Invalid parameter type for 'filename', expected: string"));
  EXPECT_EQ(Exec("device_add", {{"driver", "virtio-rng-pci"}, {"addr", 3}}),
            Error("GenericError", "Invalid parameter type for 'addr', expected: string"));
  EXPECT_EQ(Exec("object-add", {{"qom-type", "iommufd"}}), Error("GenericError", "Parameter 'id' is missing"));
  EXPECT_TRUE(target_.Calls().empty());
}

TEST_F(QmpSessionTest, RunStateCommandsCallTheTarget) {
  Negotiate();
  EXPECT_EQ(Exec("stop"), json({{"return", json::object()}}));
  EXPECT_EQ(Exec("query-status"), json::parse(R"({"return": {"status": "paused", "running": false}})"));
  EXPECT_EQ(Exec("cont"), json({{"return", json::object()}}));
  EXPECT_EQ(Exec("system_powerdown"), json({{"return", json::object()}}));
  target_.powerdown = absl::FailedPreconditionError("system_powerdown: no ACPI power button");
  EXPECT_EQ(Exec("system_powerdown"), Error("GenericError", "system_powerdown: no ACPI power button"));
  EXPECT_EQ(Exec("system_reset"), json({{"return", json::object()}}));
  EXPECT_EQ(Exec("quit"), json({{"return", json::object()}}));
  EXPECT_EQ(target_.Calls(), (std::vector<std::string>{"stop", "query-status", "cont", "system_powerdown", "system_powerdown", "system_reset",
                                                        "quit"}));
}

TEST_F(QmpSessionTest, QueryCommandsListsEveryCommand) {
  Negotiate();
  const json r = Exec("query-commands");
  std::vector<std::string> names;
  for (const json& c : r["return"]) names.push_back(c["name"]);
  for (const char* n : {"qmp_capabilities", "query-version", "query-status", "query-commands", "stop", "cont",
                        "system_reset", "system_powerdown", "quit", "getfd", "closefd", "add-fd", "remove-fd",
                        "query-fdsets", "device_add", "device_del", "object-add", "object-del", "query-pci",
                        "x-passage-query-iommufd", "x-passage-query-pasid", "x-passage-pasid-bind",
                        "x-passage-pasid-unbind"}) {
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  }
  EXPECT_EQ(Exec("query-pci")["return"][0]["bus"], 0);
}

TEST_F(QmpSessionTest, PasidCommandsCheckTheirArgumentsAndCallTheTarget) {
  Negotiate();
  target_.pasid_query = {{"width", 5}, {"bindings", json::array()}};
  EXPECT_EQ(Exec("x-passage-query-pasid"), json({{"return", target_.pasid_query}}));
  EXPECT_EQ(Exec("x-passage-pasid-bind", {{"pasid", 7}, {"object", "io0"}}), json({{"return", json::object()}}));
  EXPECT_EQ(Exec("x-passage-pasid-unbind", {{"pasid", 7}, {"object", "io0"}}), json({{"return", json::object()}}));
  // The target's refusal comes back as GenericError with its message.
  target_.pasid_bind = absl::FailedPreconditionError("x-passage-pasid-bind: 'pasid' 9: no device in this VM supports PASID");
  EXPECT_EQ(Exec("x-passage-pasid-bind", {{"pasid", 9}, {"object", "io0"}}),
            Error("GenericError", "x-passage-pasid-bind: 'pasid' 9: no device in this VM supports PASID"));
  // Arguments checked before the target sees them.
  EXPECT_EQ(Exec("x-passage-pasid-bind", {{"object", "io0"}}), Error("GenericError", "Parameter 'pasid' is missing"));
  EXPECT_EQ(Exec("x-passage-pasid-bind", {{"pasid", 1}}), Error("GenericError", "Parameter 'object' is missing"));
  EXPECT_EQ(Exec("x-passage-pasid-bind", {{"pasid", "1"}, {"object", "io0"}}),
            Error("GenericError", "Invalid parameter type for 'pasid', expected: integer"));
  EXPECT_EQ(Exec("x-passage-pasid-unbind", {{"pasid", -1}, {"object", "io0"}}),
            Error("GenericError", "x-passage-pasid-unbind: 'pasid' -1 is not a PASID (0..1048575, 20 bits)"));
  EXPECT_EQ(Exec("x-passage-pasid-bind", {{"pasid", 1048576}, {"object", "io0"}}),
            Error("GenericError", "x-passage-pasid-bind: 'pasid' 1048576 is not a PASID (0..1048575, 20 bits)"));
  EXPECT_EQ(Exec("x-passage-pasid-bind", {{"pasid", 1}, {"object", "io0"}, {"flags", 0}}),
            Error("GenericError", "Parameter 'flags' is unexpected"));
  EXPECT_EQ(target_.Calls(), (std::vector<std::string>{"x-passage-query-pasid", "pasid-bind 7 io0",
                                                       "pasid-unbind 7 io0", "pasid-bind 9 io0"}));
}

TEST_F(QmpSessionTest, NotFoundBecomesDeviceNotFound) {
  Negotiate();
  target_.device_del = absl::NotFoundError("Device 'nope' not found");
  EXPECT_EQ(Exec("device_del", {{"id", "nope"}}), Error("DeviceNotFound", "Device 'nope' not found"));
}

TEST_F(QmpSessionTest, GetfdThenDeviceAddHandsTheFdToTheDevice) {
  Negotiate();
  UniqueFd w;
  EXPECT_EQ(Exec("getfd", {{"fdname", "rng"}}, One(Pipe(w))), json({{"return", json::object()}}));
  EXPECT_EQ(session_.named_fds(), 1u);
  EXPECT_EQ(Exec("device_add", {{"driver", "virtio-rng-pci"}, {"id", "rng0"}, {"fd", "rng"}, {"addr", "05.0"},
                                {"bus", "pcie.0"}}),
            json({{"return", json::object()}}));
  ASSERT_EQ(target_.devices.size(), 1u);
  const DeviceConfig& d = target_.devices[0];
  EXPECT_EQ(d.driver, "virtio-rng-pci");
  EXPECT_EQ(d.id, "rng0");
  ASSERT_TRUE(d.addr.has_value());
  EXPECT_EQ(d.addr->slot, 5);
  ASSERT_EQ(target_.taken_fds.size(), 1u);
  EXPECT_EQ(d.fd, target_.taken_fds[0].get());
  // It is the pipe the client sent.
  ASSERT_EQ(write(w.get(), "hi", 2), 2);
  char buf[2];
  ASSERT_EQ(read(target_.taken_fds[0].get(), buf, 2), 2);
  EXPECT_EQ(std::string(buf, 2), "hi");
  // The name is used up.
  EXPECT_EQ(session_.named_fds(), 0u);
  EXPECT_EQ(Exec("closefd", {{"fdname", "rng"}}), Error("GenericError", "File descriptor named 'rng' not found"));
}

TEST_F(QmpSessionTest, DeviceAddConvertsValuesLikeTheCommandLine) {
  Negotiate();
  EXPECT_EQ(Exec("device_add", {{"driver", "virtio-rng-pci"}, {"id", "r"}, {"filename", "/tmp/a,b=c"}}),
            json({{"return", json::object()}}));
  ASSERT_EQ(target_.devices.size(), 1u);
  EXPECT_EQ(target_.devices[0].props.at("filename"), "/tmp/a,b=c");
  // The command line parser's errors, naming device_add.
  json r = Exec("device_add", {{"driver", "virtio-rng-pci"}, {"nokey", "1"}});
  EXPECT_EQ(r["error"]["class"], "GenericError");
  EXPECT_EQ(r["error"]["desc"].get<std::string>().rfind("device_add virtio-rng-pci: unknown key 'nokey'", 0), 0u) << r;
  r = Exec("device_add", {{"driver", "no-such"}});
  EXPECT_EQ(r["error"]["desc"].get<std::string>().rfind("device_add: unknown device 'no-such'", 0), 0u) << r;
  r = Exec("device_add", {{"driver", "virtio-rng-pci"}, {"a,b", "1"}});
  EXPECT_EQ(r["error"]["desc"], "device_add: invalid property name 'a,b'");
  r = Exec("device_add", {{"driver", "virtio-rng-pci"}, {"bus", "pci.7"}});
  EXPECT_EQ(r["error"]["desc"], "Bus 'pci.7' not found");
  r = Exec("device_add", {{"driver", "virtio-rng-pci"}, {"fd", "nosuch"}});
  EXPECT_EQ(r, Error("GenericError", "device_add: fd 'nosuch': no file descriptor of that name (pass it with getfd)"));
  r = Exec("device_add", {{"driver", "virtio-rng-pci"}, {"fd", 0}});
  EXPECT_EQ(r["error"]["class"], "GenericError");  // stdin is not the monitor's to give
  EXPECT_EQ(target_.devices.size(), 1u);
}

TEST_F(QmpSessionTest, ARejectedSpecLeavesTheGetfdFd) {
  Negotiate();
  UniqueFd w;
  ASSERT_EQ(Exec("getfd", {{"fdname", "f"}}, One(Pipe(w)))["return"], json::object());
  EXPECT_EQ(Exec("device_add", {{"driver", "virtio-rng-pci"}, {"fd", "f"}, {"filename", "x"}})["error"]["class"],
            "GenericError");
  EXPECT_EQ(session_.named_fds(), 1u);
  // A device that fails after parsing consumes it (as QEMU's monitor does).
  target_.device_add = absl::InternalError("device_add virtio-rng-pci: no");
  const int before = OpenFdCount();
  EXPECT_EQ(Exec("device_add", {{"driver", "virtio-rng-pci"}, {"fd", "f"}}),
            Error("GenericError", "device_add virtio-rng-pci: no"));
  EXPECT_EQ(session_.named_fds(), 0u);
  target_.taken_fds.clear();
  EXPECT_EQ(OpenFdCount(), before - 1);
}

TEST_F(QmpSessionTest, AddFdThenObjectAddByNumber) {
  Negotiate();
  UniqueFd w;
  UniqueFd r = Pipe(w);
  const int number = r.get();
  json reply = Exec("add-fd", {{"opaque", "iommu"}}, One(std::move(r)));
  EXPECT_EQ(reply, json({{"return", {{"fdset-id", 0}, {"fd", number}}}}));
  EXPECT_EQ(Exec("query-fdsets"),
            json({{"return", {{{"fdset-id", 0}, {"fds", {{{"fd", number}, {"opaque", "iommu"}}}}}}}}));
  EXPECT_EQ(Exec("object-add", {{"qom-type", "iommufd"}, {"id", "iommufd0"}, {"fd", std::to_string(number)}}),
            json({{"return", json::object()}}));
  ASSERT_EQ(target_.objects.size(), 1u);
  EXPECT_EQ(target_.objects[0].id, "iommufd0");
  EXPECT_EQ(target_.objects[0].fd, number);
  ASSERT_EQ(target_.taken_fds.size(), 1u);
  EXPECT_EQ(target_.taken_fds[0].get(), number);
  EXPECT_EQ(Exec("query-fdsets"), json({{"return", json::array()}}));
  EXPECT_EQ(Exec("remove-fd", {{"fdset-id", 0}})["error"]["class"], "GenericError");
}

TEST_F(QmpSessionTest, RemoveFdClosesIt) {
  Negotiate();
  const int before = OpenFdCount();
  UniqueFd w;
  ASSERT_EQ(Exec("add-fd", {{"fdset-id", 3}}, One(Pipe(w)))["return"]["fdset-id"], 3);
  w.reset();
  EXPECT_EQ(OpenFdCount(), before + 1);
  EXPECT_EQ(Exec("remove-fd", {{"fdset-id", 3}}), json({{"return", json::object()}}));
  EXPECT_EQ(OpenFdCount(), before);
}

TEST_F(QmpSessionTest, FdsWithABadMessageOrAnotherCommandAreClosed) {
  Negotiate();
  const int before = OpenFdCount();
  for (const std::string& text : {std::string("{\"execute\": "), std::string("[]"), std::string("{}"),
                                  std::string(R"({"execute": "query-status"})"), std::string(R"({"execute": "nope"})"),
                                  std::string(R"({"execute": "getfd", "arguments": {"fdname": "1x"}})"),
                                  std::string(R"({"execute": "getfd", "arguments": {"fdname": 3}})")}) {
    UniqueFd w1, w2;
    std::vector<UniqueFd> fds;
    fds.push_back(Pipe(w1));
    fds.push_back(Pipe(w2));
    Send(text, std::move(fds));
    w1.reset();
    w2.reset();
    EXPECT_EQ(OpenFdCount(), before) << text;
  }
  EXPECT_EQ(Exec("getfd", {{"fdname", "x"}}), Error("GenericError", "No file descriptor supplied via SCM_RIGHTS"));
  // getfd keeps one fd (the first) and closes the rest.
  UniqueFd w1, w2;
  std::vector<UniqueFd> fds;
  fds.push_back(Pipe(w1));
  fds.push_back(Pipe(w2));
  ASSERT_EQ(Exec("getfd", {{"fdname", "x"}}, std::move(fds))["return"], json::object());
  w1.reset();
  w2.reset();
  EXPECT_EQ(OpenFdCount(), before + 1);
  EXPECT_EQ(Exec("closefd", {{"fdname", "x"}}), json({{"return", json::object()}}));
  EXPECT_EQ(OpenFdCount(), before);
}

TEST_F(QmpSessionTest, GetfdIsBounded) {
  Negotiate();
  const int before = OpenFdCount();
  for (size_t i = 0; i < QmpSession::kMaxNamedFds; ++i) {
    UniqueFd w;
    ASSERT_EQ(Exec("getfd", {{"fdname", "f" + std::to_string(i)}}, One(Pipe(w)))["return"], json::object());
  }
  UniqueFd w;
  EXPECT_EQ(Exec("getfd", {{"fdname", "one-more"}}, One(Pipe(w)))["error"]["class"], "GenericError");
  w.reset();
  EXPECT_EQ(OpenFdCount(), before + static_cast<int>(QmpSession::kMaxNamedFds));
}

TEST(QmpEvent, Shape) {
  const json e = QmpEvent("SHUTDOWN", {{"guest", false}, {"reason", "host-qmp-quit"}});
  EXPECT_EQ(e["event"], "SHUTDOWN");
  EXPECT_EQ(e["data"]["reason"], "host-qmp-quit");
  EXPECT_TRUE(e["timestamp"]["seconds"].is_number_integer());
  EXPECT_TRUE(e["timestamp"]["microseconds"].is_number_integer());
  EXPECT_FALSE(QmpEvent("STOP", nullptr).contains("data"));
  EXPECT_EQ(QmpLine(json::object()), "{}\r\n");
}

}  // namespace
}  // namespace passage
