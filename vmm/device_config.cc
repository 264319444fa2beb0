#include "vmm/device_config.h"

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "vmm/device_registry.h"
#include "vmm/passed_fds.h"

namespace passage {
namespace {

// absl's number parsers skip surrounding whitespace; user text must not
// get that leniency.
bool AllOf(absl::string_view s, bool (*pred)(unsigned char)) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!pred(static_cast<unsigned char>(c))) return false;
  }
  return true;
}


// `text` with control characters escaped (\n, \x01, ...), the rest as is.
std::string OneLine(absl::string_view text) {
  std::string out;
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) {
      absl::StrAppend(&out, absl::CEscape(absl::string_view(&c, 1)));
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

bool ValidId(absl::string_view id) {
  if (id.empty() || !absl::ascii_isalpha(id[0])) return false;
  for (char c : id) {
    if (!absl::ascii_isalnum(c) && c != '-' && c != '_' && c != '.') return false;
  }
  return true;
}

bool HasKey(const std::vector<KeySpec>& keys, absl::string_view key) {
  for (const KeySpec& k : keys) {
    if (key == k.name) return true;
  }
  return false;
}

std::string UnknownKeyMessage(absl::string_view key, std::vector<std::string> common,
                              const std::vector<KeySpec>& keys) {
  for (const KeySpec& k : keys) common.push_back(k.name);
  return absl::StrCat("unknown key '", absl::CEscape(key), "' (known: ", absl::StrJoin(common, ", "), ")");
}

std::string KindHelp(absl::string_view name, absl::string_view help, const std::vector<KeySpec>& keys) {
  std::string out = absl::StrFormat("      %-16s %s\n", name, help);
  for (const KeySpec& k : keys) {
    absl::StrAppendFormat(&out, "        ,%-13s %s\n", absl::StrCat(k.name, "=", k.value), k.help);
  }
  return out;
}

const std::string* KeyValues::Find(absl::string_view key) const {
  for (const auto& [k, v] : pairs) {
    if (k == key) return &v;
  }
  return nullptr;
}

absl::StatusOr<KeyValues> ParseKeyValues(absl::string_view text, absl::string_view implied_key) {
  // Split on single commas; ",," stays a comma.
  std::vector<std::string> elements(1);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != ',') {
      elements.back() += text[i];
    } else if (i + 1 < text.size() && text[i + 1] == ',') {
      elements.back() += ',';
      ++i;
    } else {
      elements.emplace_back();
    }
  }
  KeyValues out;
  for (size_t i = 0; i < elements.size(); ++i) {
    const std::string& e = elements[i];
    const size_t eq = e.find('=');
    std::string key, value;
    if (eq == std::string::npos) {
      if (i != 0 || e.empty()) {
        return absl::InvalidArgumentError(
            e.empty() ? std::string("empty element") : absl::StrCat("'", absl::CEscape(e), "' is not key=value"));
      }
      key = std::string(implied_key);
      value = e;
    } else {
      key = e.substr(0, eq);
      value = e.substr(eq + 1);
      if (key.empty()) return absl::InvalidArgumentError(absl::StrCat("'", absl::CEscape(e), "' has no key"));
    }
    if (out.Find(key) != nullptr) return absl::InvalidArgumentError(absl::StrCat("key '", absl::CEscape(key), "' given twice"));
    out.pairs.emplace_back(std::move(key), std::move(value));
  }
  return out;
}

absl::StatusOr<PciSlot> ParsePciSlot(absl::string_view text) {
  absl::string_view slot_text = text;
  absl::string_view fn_text;
  if (size_t dot = text.find('.'); dot != text.npos) {
    slot_text = text.substr(0, dot);
    fn_text = text.substr(dot + 1);
    if (fn_text.empty()) return absl::InvalidArgumentError(absl::StrCat("addr='", absl::CEscape(text), "': missing function"));
  }
  absl::ConsumePrefix(&slot_text, "0x");
  uint32_t slot = 0, fn = 0;
  if (slot_text.size() > 2 || !AllOf(slot_text, absl::ascii_isxdigit) ||
      !absl::SimpleHexAtoi(slot_text, &slot) || slot > 0x1f ||
      (!fn_text.empty() && (fn_text.size() > 1 || !AllOf(fn_text, absl::ascii_isxdigit) ||
                            !absl::SimpleHexAtoi(fn_text, &fn) || fn > 7))) {
    return absl::InvalidArgumentError(
        absl::StrCat("addr='", absl::CEscape(text), "': expected SLOT[.FN], slot 0-1f and function 0-7 in hex"));
  }
  return PciSlot{static_cast<uint8_t>(slot), static_cast<uint8_t>(fn)};
}

std::string DeviceConfig::Label() const {
  return id.empty() ? absl::StrCat("-device ", driver) : absl::StrCat("-device ", driver, ",id=", id);
}

absl::StatusOr<DeviceConfig> ParseDeviceConfig(absl::string_view spec) {
  if (spec.empty() || spec[0] == ',') return absl::InvalidArgumentError("-device: missing device name");
  absl::StatusOr<KeyValues> kv = ParseKeyValues(spec, "driver");
  if (!kv.ok()) return absl::InvalidArgumentError(absl::StrCat("-device '", absl::CEscape(spec), "': ", kv.status().message()));
  DeviceConfig d;
  const std::string* driver = kv->Find("driver");
  if (driver == nullptr || driver->empty()) return absl::InvalidArgumentError("-device: missing device name");
  d.driver = *driver;
  const DeviceKind* kind = FindDeviceKind(d.driver);
  if (kind == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("-device: unknown device '", absl::CEscape(d.driver), "' (known: ",
                                                   absl::StrJoin(KnownDeviceNames(), ", "), ")"));
  }
  if (const std::string* id = kv->Find("id")) {
    if (!ValidId(*id)) {
      return absl::InvalidArgumentError(absl::StrCat("-device ", d.driver, ": id='", absl::CEscape(*id),
                                                     "' ", kIdRule));
    }
    d.id = *id;
  }
  for (const auto& [key, value] : kv->pairs) {
    if (key == "driver" || key == "id") continue;
    if (key == "addr") {
      absl::StatusOr<PciSlot> slot = ParsePciSlot(value);
      if (!slot.ok()) return absl::InvalidArgumentError(absl::StrCat(d.Label(), ": ", slot.status().message()));
      if (slot->slot == 0) {
        return absl::InvalidArgumentError(absl::StrCat(d.Label(), ": addr='", absl::CEscape(value), "': slot 0 holds the host bridge"));
      }
      d.addr = *slot;
      continue;
    }
    if (!HasKey(kind->keys, key)) {
      return absl::InvalidArgumentError(
          absl::StrCat(d.Label(), ": ", UnknownKeyMessage(key, {"addr", "id"}, kind->keys)));
    }
    if (key == "fd") {
      absl::StatusOr<int> fd = ParseFdNumber(value);
      if (!fd.ok()) return absl::InvalidArgumentError(absl::StrCat(d.Label(), ": ", fd.status().message()));
      d.fd = *fd;
    }
    d.props.emplace(key, value);
  }
  if (absl::Status s = kind->check(d); !s.ok()) {
    // A driver's check may quote what the user typed; keep it one line.
    return absl::InvalidArgumentError(absl::StrCat(d.Label(), ": ", OneLine(s.message())));
  }
  return d;
}

absl::Status ValidateDeviceConfigs(const std::vector<DeviceConfig>& devices) {
  for (size_t i = 0; i < devices.size(); ++i) {
    const DeviceConfig& a = devices[i];
    for (size_t j = 0; j < i; ++j) {
      const DeviceConfig& b = devices[j];
      if (!a.id.empty() && a.id == b.id) {
        return absl::InvalidArgumentError(absl::StrCat(a.Label(), ": duplicate id '", a.id, "'"));
      }
      if (a.addr && b.addr && *a.addr == *b.addr) {
        return absl::InvalidArgumentError(absl::StrFormat("%s: addr=%02x.%x is already used by %s",
                                                          a.Label(), a.addr->slot, a.addr->function, b.Label()));
      }
    }
    if (a.addr && a.addr->function != 0) {
      bool fn0 = false;
      for (const DeviceConfig& b : devices) fn0 |= b.addr && b.addr->slot == a.addr->slot && b.addr->function == 0;
      if (!fn0) {
        return absl::InvalidArgumentError(absl::StrFormat(
            "%s: addr=%02x.%x needs a device at function 0 of slot %02x", a.Label(), a.addr->slot,
            a.addr->function, a.addr->slot));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace passage
