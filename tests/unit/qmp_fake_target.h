// A ControlTarget that records what the QMP layer asked of it, for the QMP
// unit tests (no VM, no KVM).
#ifndef PASSAGE_TESTS_UNIT_QMP_FAKE_TARGET_H_
#define PASSAGE_TESTS_UNIT_QMP_FAKE_TARGET_H_

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "vmm/control.h"

namespace passage::testing {

class FakeTarget : public ControlTarget {
 public:
  std::string RunState() override { return Record("query-status"), state; }
  absl::Status Stop() override {
    Record("stop");
    state = "paused";
    return absl::OkStatus();
  }
  absl::Status Cont() override {
    Record("cont");
    state = "running";
    return absl::OkStatus();
  }
  void Quit() override { Record("quit"); }
  void SystemReset() override { Record("system_reset"); }
  absl::Status SystemPowerdown() override { return Record("system_powerdown"), powerdown; }
  absl::Status DeviceAdd(const DeviceConfig& config, PassedFds& fds) override {
    Record("device_add " + config.driver + " id=" + config.id);
    devices.push_back(config);
    if (config.fd >= 0) {
      absl::StatusOr<UniqueFd> fd = fds.Take(config.fd);
      if (fd.ok()) taken_fds.push_back(std::move(*fd));
    }
    return device_add;
  }
  absl::Status DeviceDel(const std::string& id) override { return Record("device_del " + id), device_del; }
  absl::Status ObjectAdd(const ObjectConfig& config, PassedFds& fds) override {
    Record("object-add " + config.type + " id=" + config.id);
    objects.push_back(config);
    if (config.fd >= 0) {
      absl::StatusOr<UniqueFd> fd = fds.Take(config.fd);
      if (fd.ok()) taken_fds.push_back(std::move(*fd));
    }
    return absl::OkStatus();
  }
  absl::Status ObjectDel(const std::string& id) override { return Record("object-del " + id), absl::OkStatus(); }
  nlohmann::json QueryPci() override {
    Record("query-pci");
    return nlohmann::json::array({{{"bus", 0}, {"devices", nlohmann::json::array()}}});
  }
  nlohmann::json QueryIommufd() override { return Record("x-passage-query-iommufd"), nlohmann::json::array(); }
  nlohmann::json QueryPasid() override { return Record("x-passage-query-pasid"), pasid_query; }
  absl::Status PasidBind(uint32_t pasid, const std::string& object) override {
    return Record("pasid-bind " + std::to_string(pasid) + " " + object), pasid_bind;
  }
  absl::Status PasidUnbind(uint32_t pasid, const std::string& object) override {
    return Record("pasid-unbind " + std::to_string(pasid) + " " + object), absl::OkStatus();
  }

  std::vector<std::string> Calls() {
    absl::MutexLock lock(&mu);
    return calls;
  }

  std::string state = "running";
  absl::Status powerdown = absl::OkStatus();
  absl::Status device_add = absl::OkStatus();
  absl::Status device_del = absl::OkStatus();
  absl::Status pasid_bind = absl::OkStatus();
  nlohmann::json pasid_query = {{"width", 0}};
  std::vector<DeviceConfig> devices;
  std::vector<ObjectConfig> objects;
  std::vector<UniqueFd> taken_fds;  // fds the "devices" took, still open

 private:
  void Record(std::string call) {
    absl::MutexLock lock(&mu);
    calls.push_back(std::move(call));
  }
  absl::Mutex mu;
  std::vector<std::string> calls ABSL_GUARDED_BY(mu);
};

// Open fds of this process (the /proc/self/fd listing's own fd not counted).
inline int OpenFdCount() {
  int n = 0;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n - 1;
}

}  // namespace passage::testing

#endif  // PASSAGE_TESTS_UNIT_QMP_FAKE_TARGET_H_
