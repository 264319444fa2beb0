// "-object TYPE,id=ID,key=value,...", checked against the table of object
// types in object_config.cc (which --help lists), today one:
//   iommufd,id=ID[,fd=N]   a /dev/iommu instance (or an already-open one)
// Parse errors are one line naming -object and the id.
#ifndef PASSAGE_VMM_OBJECT_CONFIG_H_
#define PASSAGE_VMM_OBJECT_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace passage {

struct ObjectConfig {
  std::string type;  // "iommufd"
  std::string id;
  int fd = -1;       // fd=N: adopted; passage opens nothing for this object
  std::string Label() const;  // "-object iommufd,id=iommufd0"
};

absl::StatusOr<ObjectConfig> ParseObjectConfig(absl::string_view spec);
// Unique ids. (An fd named twice anywhere on the command line is
// PassedFds::CheckUnique's error.)
absl::Status ValidateObjectConfigs(const std::vector<ObjectConfig>& objects);

// The --help text for -object: every type with its keys.
std::string ObjectTypesHelp();

}  // namespace passage

#endif  // PASSAGE_VMM_OBJECT_CONFIG_H_
