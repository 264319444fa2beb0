#include "vmm/object_config.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "vmm/device_config.h"
#include "vmm/passed_fds.h"

namespace passage {
namespace {

struct ObjectType {
  const char* name;
  const char* help;  // one line
  std::vector<KeySpec> keys;  // besides id=, which every object has
};

const std::vector<ObjectType>& ObjectTypes() {
  static const auto* types = new std::vector<ObjectType>{
      {"iommufd",
       "an iommufd (/dev/iommu) with one IOAS that maps all guest RAM",
       {{"fd", "N", "an open /dev/iommu, instead of opening it"}}},
  };
  return *types;
}

}  // namespace

std::string ObjectConfig::Label() const {
  return id.empty() ? absl::StrCat("-object ", type) : absl::StrCat("-object ", type, ",id=", id);
}

absl::StatusOr<ObjectConfig> ParseObjectConfig(absl::string_view spec) {
  absl::StatusOr<KeyValues> kv = ParseKeyValues(spec, "qom-type");
  if (!kv.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("-object '", absl::CEscape(spec), "': ", kv.status().message()));
  }
  ObjectConfig o;
  const std::string* type = kv->Find("qom-type");
  if (type == nullptr || type->empty()) return absl::InvalidArgumentError("-object: missing object type");
  o.type = *type;
  const ObjectType* kind = nullptr;
  std::vector<std::string> names;
  for (const ObjectType& t : ObjectTypes()) {
    names.push_back(t.name);
    if (o.type == t.name) kind = &t;
  }
  if (kind == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("-object: unknown object type '", absl::CEscape(o.type),
                                                   "' (known: ", absl::StrJoin(names, ", "), ")"));
  }
  const std::string* id = kv->Find("id");
  if (id == nullptr || id->empty()) {
    return absl::InvalidArgumentError(absl::StrCat("-object ", o.type, ": id= is required"));
  }
  if (!ValidId(*id)) {
    return absl::InvalidArgumentError(
        absl::StrCat("-object ", o.type, ": id='", absl::CEscape(*id), "' ", kIdRule));
  }
  o.id = *id;
  for (const auto& [key, value] : kv->pairs) {
    if (key == "qom-type" || key == "id") continue;
    if (!HasKey(kind->keys, key)) {
      return absl::InvalidArgumentError(absl::StrCat(o.Label(), ": ", UnknownKeyMessage(key, {"id"}, kind->keys)));
    }
    if (key == "fd") {
      absl::StatusOr<int> fd = ParseFdNumber(value);
      if (!fd.ok()) return absl::InvalidArgumentError(absl::StrCat(o.Label(), ": ", fd.status().message()));
      o.fd = *fd;
    }
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
    }
  }
  return absl::OkStatus();
}

std::string ObjectTypesHelp() {
  std::string out;
  for (const ObjectType& t : ObjectTypes()) {
    absl::StrAppend(&out, KindHelp(absl::StrCat(t.name, ",id=ID"), t.help, t.keys));
  }
  return out;
}

}  // namespace passage
