#include "vmm/object_config.h"

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "vmm/device_config.h"

namespace passage {

std::string ObjectConfig::Label() const {
  return id.empty() ? absl::StrCat("-object ", type) : absl::StrCat("-object ", type, ",id=", id);
}

absl::StatusOr<ObjectConfig> ParseObjectConfig(absl::string_view spec) {
  absl::StatusOr<KeyValues> kv = ParseKeyValues(spec, "qom-type");
  if (!kv.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("-object '", spec, "': ", kv.status().message()));
  }
  ObjectConfig o;
  const std::string* type = kv->Find("qom-type");
  if (type == nullptr || type->empty()) return absl::InvalidArgumentError("-object: missing object type");
  o.type = *type;
  if (o.type != "iommufd") {
    return absl::InvalidArgumentError(
        absl::StrCat("-object: unknown object type '", o.type, "' (known: iommufd)"));
  }
  const std::string* id = kv->Find("id");
  if (id == nullptr || id->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("-object ", o.type, ": id= is required"));
  }
  if (!absl::ascii_isalpha((*id)[0])) {
    return absl::InvalidArgumentError(
        absl::StrCat("-object ", o.type, ": id='", *id, "' must start with a letter"));
  }
  o.id = *id;
  for (const auto& [key, value] : kv->pairs) {
    if (key == "qom-type" || key == "id") continue;
    if (key == "fd") {
      if (!absl::SimpleAtoi(value, &o.fd) || o.fd < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(o.Label(), ": fd='", value, "' is not a file descriptor number"));
      }
      continue;
    }
    return absl::InvalidArgumentError(
        absl::StrCat(o.Label(), ": unknown key '", key, "' (known: id, fd)"));
  }
  return o;
}

absl::Status ValidateObjectConfigs(const std::vector<ObjectConfig>& objects) {
  for (size_t i = 0; i < objects.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (objects[i].id == objects[j].id) {
        return absl::InvalidArgumentError(
            absl::StrCat(objects[i].Label(), ": duplicate id '", objects[i].id, "'"));
      }
      if (objects[i].fd >= 0 && objects[i].fd == objects[j].fd) {
        return absl::InvalidArgumentError(absl::StrCat(objects[i].Label(), ": fd=", objects[i].fd,
                                                       " is already used by ", objects[j].Label()));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace passage
