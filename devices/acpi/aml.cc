#include "devices/acpi/aml.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace passage::aml {
namespace {

// Opcodes (ACPI 6.x, 20.3).
constexpr uint8_t kZeroOp = 0x00, kOneOp = 0x01, kOnesOp = 0xff;
constexpr uint8_t kBytePrefix = 0x0a, kWordPrefix = 0x0b, kDWordPrefix = 0x0c,
                  kQWordPrefix = 0x0e, kStringPrefix = 0x0d;
constexpr uint8_t kNameOp = 0x08, kScopeOp = 0x10, kBufferOp = 0x11, kPackageOp = 0x12;
constexpr uint8_t kExtOpPrefix = 0x5b, kDeviceOp = 0x82, kOpRegionOp = 0x80, kFieldOp = 0x81;
constexpr uint8_t kMethodOp = 0x14, kLocal0Op = 0x60, kArg0Op = 0x68, kStoreOp = 0x70,
                  kAndOp = 0x7b, kOrOp = 0x7d, kNotifyOp = 0x86, kCreateDWordFieldOp = 0x8a,
                  kLNotOp = 0x92, kLEqualOp = 0x93, kIfOp = 0xa0, kElseOp = 0xa1, kReturnOp = 0xa4;
constexpr uint8_t kRootChar = '\\', kParentPrefix = '^', kDualNamePrefix = 0x2e,
                  kMultiNamePrefix = 0x2f, kNullName = 0x00;

void Append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

void AppendLe(Bytes& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

// opcode(s) PkgLength body
Bytes WithPkgLength(const Bytes& opcode, const Bytes& body) {
  Bytes out = opcode;
  Append(out, PkgLength(body.size()));
  Append(out, body);
  return out;
}

// A PkgLength-style encoding of `value` itself (not counting its own bytes),
// as FieldList elements use it for their widths in bits.
Bytes RawPkgLength(uint32_t value) {
  if (value < 64) return {static_cast<uint8_t>(value)};
  for (int n = 2; n <= 4; ++n) {
    if (value >= (uint64_t{1} << (4 + 8 * (n - 1)))) continue;
    Bytes out = {static_cast<uint8_t>(((n - 1) << 6) | (value & 0x0f))};
    for (int i = 1; i < n; ++i) out.push_back(static_cast<uint8_t>(value >> (4 + 8 * (i - 1))));
    return out;
  }
  return {};  // >= 2^28 bits: never asked for
}

bool IsLeadChar(char c) { return (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsNameChar(char c) { return IsLeadChar(c) || (c >= '0' && c <= '9'); }

}  // namespace

Bytes PkgLength(size_t payload) {
  // One byte holds up to 63; n > 1 bytes hold 4 + 8 * (n - 1) bits.
  for (int n = 1; n <= 4; ++n) {
    const size_t total = payload + n;
    const size_t limit = n == 1 ? 64 : (size_t{1} << (4 + 8 * (n - 1)));
    if (total >= limit) continue;
    if (n == 1) return {static_cast<uint8_t>(total)};
    Bytes out = {static_cast<uint8_t>(((n - 1) << 6) | (total & 0x0f))};
    for (int i = 1; i < n; ++i) out.push_back(static_cast<uint8_t>(total >> (4 + 8 * (i - 1))));
    return out;
  }
  return {};  // > 256 MiB: not representable; callers never build such tables
}

absl::StatusOr<Bytes> NameString(absl::string_view path) {
  Bytes out;
  absl::string_view rest = path;
  if (!rest.empty() && rest[0] == '\\') {
    out.push_back(kRootChar);
    rest.remove_prefix(1);
  } else {
    while (!rest.empty() && rest[0] == '^') {
      out.push_back(kParentPrefix);
      rest.remove_prefix(1);
    }
  }
  if (rest.empty()) {
    if (out.empty()) return absl::InvalidArgumentError("AML: empty name");
    out.push_back(kNullName);
    return out;
  }
  std::vector<absl::string_view> segments = absl::StrSplit(rest, '.');
  if (segments.size() > 255) return absl::InvalidArgumentError("AML: name has too many segments");
  Bytes segs;
  for (absl::string_view seg : segments) {
    if (seg.empty() || seg.size() > 4 || !IsLeadChar(seg[0])) {
      return absl::InvalidArgumentError(absl::StrCat("AML: bad name segment '", seg, "' in '",
                                                     path, "'"));
    }
    for (char c : seg) {
      if (!IsNameChar(c)) {
        return absl::InvalidArgumentError(absl::StrCat("AML: bad character in '", path, "'"));
      }
    }
    for (size_t i = 0; i < 4; ++i) segs.push_back(i < seg.size() ? seg[i] : '_');
  }
  if (segments.size() == 2) {
    out.push_back(kDualNamePrefix);
  } else if (segments.size() > 2) {
    out.push_back(kMultiNamePrefix);
    out.push_back(static_cast<uint8_t>(segments.size()));
  }
  Append(out, segs);
  return out;
}

Bytes Integer(uint64_t value) {
  if (value == 0) return {kZeroOp};
  if (value == 1) return {kOneOp};
  if (value == ~uint64_t{0}) return {kOnesOp};
  Bytes out;
  if (value <= 0xff) {
    out.push_back(kBytePrefix);
    AppendLe(out, value, 1);
  } else if (value <= 0xffff) {
    out.push_back(kWordPrefix);
    AppendLe(out, value, 2);
  } else if (value <= 0xffffffff) {
    out.push_back(kDWordPrefix);
    AppendLe(out, value, 4);
  } else {
    out.push_back(kQWordPrefix);
    AppendLe(out, value, 8);
  }
  return out;
}

Bytes String(absl::string_view text) {
  Bytes out = {kStringPrefix};
  for (char c : text) out.push_back(static_cast<uint8_t>(c & 0x7f));
  out.push_back(0);
  return out;
}

absl::StatusOr<Bytes> EisaId(absl::string_view id) {
  bool ok = id.size() == 7;
  for (size_t i = 0; ok && i < 7; ++i) {
    ok = i < 3 ? (id[i] >= 'A' && id[i] <= 'Z') : absl::ascii_isxdigit(id[i]);
  }
  if (!ok) return absl::InvalidArgumentError(absl::StrCat("AML: bad EISA ID '", id, "'"));
  auto hex = [](char c) -> uint32_t {
    return absl::ascii_isdigit(c) ? c - '0' : absl::ascii_toupper(c) - 'A' + 10;
  };
  const uint32_t vendor = ((id[0] - 0x40u) << 10) | ((id[1] - 0x40u) << 5) | (id[2] - 0x40u);
  const uint32_t product = (hex(id[3]) << 12) | (hex(id[4]) << 8) | (hex(id[5]) << 4) | hex(id[6]);
  // Stored big-endian as bytes: vendor (2 bytes), product (2 bytes).
  const uint32_t value = (vendor >> 8) | ((vendor & 0xff) << 8) | ((product >> 8) << 16) |
                         ((product & 0xff) << 24);
  Bytes out = {kDWordPrefix};
  AppendLe(out, value, 4);
  return out;
}

absl::StatusOr<Bytes> Name(absl::string_view path, const Bytes& value) {
  absl::StatusOr<Bytes> name = NameString(path);
  if (!name.ok()) return name.status();
  Bytes out = {kNameOp};
  Append(out, *name);
  Append(out, value);
  return out;
}

absl::StatusOr<Bytes> Scope(absl::string_view path, const std::vector<Bytes>& terms) {
  absl::StatusOr<Bytes> body = NameString(path);
  if (!body.ok()) return body.status();
  for (const Bytes& t : terms) Append(*body, t);
  return WithPkgLength({kScopeOp}, *body);
}

absl::StatusOr<Bytes> Device(absl::string_view path, const std::vector<Bytes>& terms) {
  absl::StatusOr<Bytes> body = NameString(path);
  if (!body.ok()) return body.status();
  for (const Bytes& t : terms) Append(*body, t);
  return WithPkgLength({kExtOpPrefix, kDeviceOp}, *body);
}

absl::StatusOr<Bytes> Package(const std::vector<Bytes>& elements) {
  if (elements.size() > 255) return absl::InvalidArgumentError("AML: package too large");
  Bytes body = {static_cast<uint8_t>(elements.size())};
  for (const Bytes& e : elements) Append(body, e);
  return WithPkgLength({kPackageOp}, body);
}

Bytes Buffer(const Bytes& data) {
  Bytes body = Integer(data.size());
  Append(body, data);
  return WithPkgLength({kBufferOp}, body);
}

Bytes IoPort(uint16_t min, uint16_t max, uint8_t alignment, uint8_t length) {
  Bytes out = {0x47, 0x01};  // small item 0x08, 7 bytes; 16-bit decode
  AppendLe(out, min, 2);
  AppendLe(out, max, 2);
  out.push_back(alignment);
  out.push_back(length);
  return out;
}

Bytes IrqNoFlags(uint8_t irq) {
  const uint16_t mask = irq < 16 ? static_cast<uint16_t>(1u << irq) : 0;
  Bytes out = {0x22};  // small item 0x04, 2 bytes
  AppendLe(out, mask, 2);
  return out;
}

Bytes Memory32Fixed(bool writable, uint32_t base, uint32_t length) {
  Bytes out = {0x86, 0x09, 0x00, static_cast<uint8_t>(writable ? 1 : 0)};  // large item 0x06
  AppendLe(out, base, 4);
  AppendLe(out, length, 4);
  return out;
}

Bytes ResourceTemplate(const std::vector<Bytes>& descriptors) {
  Bytes data;
  for (const Bytes& d : descriptors) Append(data, d);
  data.push_back(0x79);  // end tag
  data.push_back(0x00);  // checksum 0: "treat as correct"
  return Buffer(data);
}

namespace {

// tag, length, resource type, general flags, type-specific flags, then
// granularity, min, max, translation offset, length, each `width` bytes.
Bytes AddressSpace(uint8_t tag, int width, uint8_t type, uint8_t type_flags, uint64_t min,
                   uint64_t max) {
  constexpr uint8_t kProducerFixed = 0x0c;  // producer, positive decode, MinFixed, MaxFixed
  Bytes out = {tag};
  AppendLe(out, 3 + 5u * static_cast<unsigned>(width), 2);
  out.push_back(type);
  out.push_back(kProducerFixed);
  out.push_back(type_flags);
  AppendLe(out, 0, width);  // granularity
  AppendLe(out, min, width);
  AppendLe(out, max, width);
  AppendLe(out, 0, width);  // translation offset
  AppendLe(out, max - min + 1, width);
  return out;
}

}  // namespace

Bytes WordBusNumber(uint16_t min, uint16_t max) { return AddressSpace(0x88, 2, 2, 0, min, max); }
Bytes WordIo(uint16_t min, uint16_t max) { return AddressSpace(0x88, 2, 1, 0x03, min, max); }
Bytes DWordMemory(bool cacheable, uint32_t min, uint32_t max) {
  return AddressSpace(0x87, 4, 0, cacheable ? 0x03 : 0x01, min, max);
}
Bytes QWordMemory(bool cacheable, uint64_t min, uint64_t max) {
  return AddressSpace(0x8a, 8, 0, cacheable ? 0x03 : 0x01, min, max);
}

absl::StatusOr<Bytes> Method(absl::string_view path, int args, bool serialized,
                             const std::vector<Bytes>& terms) {
  if (args < 0 || args > 7) return absl::InvalidArgumentError("AML: a method takes 0 to 7 arguments");
  absl::StatusOr<Bytes> body = NameString(path);
  if (!body.ok()) return body.status();
  body->push_back(static_cast<uint8_t>(args | (serialized ? 0x08 : 0)));  // sync level 0
  for (const Bytes& t : terms) Append(*body, t);
  return WithPkgLength({kMethodOp}, *body);
}

Bytes Local(int n) {
  if (n < 0 || n > 7) return {};
  return {static_cast<uint8_t>(kLocal0Op + n)};
}

Bytes Arg(int n) {
  if (n < 0 || n > 6) return {};
  return {static_cast<uint8_t>(kArg0Op + n)};
}

absl::StatusOr<Bytes> Ref(absl::string_view path) { return NameString(path); }

Bytes Store(const Bytes& value, const Bytes& target) {
  Bytes out = {kStoreOp};
  Append(out, value);
  Append(out, target);
  return out;
}

namespace {

Bytes Binary(uint8_t op, const Bytes& a, const Bytes& b, const Bytes& target) {
  Bytes out = {op};
  Append(out, a);
  Append(out, b);
  if (target.empty()) {
    out.push_back(kNullName);  // no target
  } else {
    Append(out, target);
  }
  return out;
}

}  // namespace

Bytes And(const Bytes& a, const Bytes& b, const Bytes& target) { return Binary(kAndOp, a, b, target); }
Bytes Or(const Bytes& a, const Bytes& b, const Bytes& target) { return Binary(kOrOp, a, b, target); }

Bytes LNot(const Bytes& a) {
  Bytes out = {kLNotOp};
  Append(out, a);
  return out;
}

Bytes Else(const std::vector<Bytes>& terms) {
  Bytes body;
  for (const Bytes& t : terms) Append(body, t);
  return WithPkgLength({kElseOp}, body);
}

Bytes Return(const Bytes& value) {
  Bytes out = {kReturnOp};
  Append(out, value);
  return out;
}

absl::StatusOr<Bytes> CreateDWordField(const Bytes& source, uint64_t byte_index,
                                       absl::string_view name) {
  absl::StatusOr<Bytes> n = NameString(name);
  if (!n.ok()) return n.status();
  Bytes out = {kCreateDWordFieldOp};
  Append(out, source);
  Append(out, Integer(byte_index));
  Append(out, *n);
  return out;
}

absl::StatusOr<Bytes> Uuid(absl::string_view uuid) {
  // 8-4-4-4-12 hex digits.
  static constexpr int kGroups[] = {8, 4, 4, 4, 12};
  std::vector<absl::string_view> parts = absl::StrSplit(uuid, '-');
  bool ok = parts.size() == 5;
  for (size_t i = 0; ok && i < 5; ++i) {
    ok = parts[i].size() == static_cast<size_t>(kGroups[i]);
    for (char c : parts[i]) ok = ok && absl::ascii_isxdigit(c);
  }
  if (!ok) return absl::InvalidArgumentError(absl::StrCat("AML: bad UUID '", uuid, "'"));
  auto hex = [](char c) -> uint8_t {
    return static_cast<uint8_t>(absl::ascii_isdigit(c) ? c - '0' : absl::ascii_toupper(c) - 'A' + 10);
  };
  auto bytes_of = [&](absl::string_view group) {
    Bytes b;
    for (size_t i = 0; i < group.size(); i += 2) b.push_back(static_cast<uint8_t>(hex(group[i]) << 4 | hex(group[i + 1])));
    return b;
  };
  Bytes data;
  for (size_t i = 0; i < 5; ++i) {
    Bytes b = bytes_of(parts[i]);
    if (i < 3) std::reverse(b.begin(), b.end());  // little-endian fields
    Append(data, b);
  }
  return Buffer(data);
}

Bytes LEqual(const Bytes& a, const Bytes& b) {
  Bytes out = {kLEqualOp};
  Append(out, a);
  Append(out, b);
  return out;
}

Bytes If(const Bytes& predicate, const std::vector<Bytes>& terms) {
  Bytes body = predicate;
  for (const Bytes& t : terms) Append(body, t);
  return WithPkgLength({kIfOp}, body);
}

Bytes Notify(const Bytes& object, const Bytes& value) {
  Bytes out = {kNotifyOp};
  Append(out, object);
  Append(out, value);
  return out;
}

absl::StatusOr<Bytes> OperationRegion(absl::string_view path, RegionSpace space, uint64_t offset,
                                      uint64_t length) {
  absl::StatusOr<Bytes> name = NameString(path);
  if (!name.ok()) return name.status();
  Bytes out = {kExtOpPrefix, kOpRegionOp};
  Append(out, *name);
  out.push_back(static_cast<uint8_t>(space));
  Append(out, Integer(offset));
  Append(out, Integer(length));
  return out;
}

absl::StatusOr<Bytes> Field(absl::string_view region, FieldAccess access, FieldUpdate update,
                            const std::vector<FieldUnit>& units) {
  absl::StatusOr<Bytes> body = NameString(region);
  if (!body.ok()) return body.status();
  body->push_back(static_cast<uint8_t>(static_cast<uint8_t>(access) |
                                       (static_cast<uint8_t>(update) << 5)));  // NoLock
  for (const FieldUnit& u : units) {
    if (u.bits == 0 || u.bits >= (1u << 28)) {
      return absl::InvalidArgumentError(absl::StrCat("AML: field unit '", u.name, "' has ", u.bits, " bits"));
    }
    if (u.name.empty()) {
      body->push_back(kNullName);  // ReservedField
    } else {
      absl::StatusOr<Bytes> seg = NameString(u.name);
      if (!seg.ok()) return seg.status();
      if (seg->size() != 4) return absl::InvalidArgumentError(absl::StrCat("AML: field unit '", u.name, "' is not a NameSeg"));
      Append(*body, *seg);
    }
    Append(*body, RawPkgLength(u.bits));
  }
  return WithPkgLength({kExtOpPrefix, kFieldOp}, *body);
}

Bytes ExtendedInterrupt(bool edge, bool active_low, bool shared, uint32_t gsi) {
  Bytes out = {0x89};  // large item 0x09
  AppendLe(out, 6, 2);
  out.push_back(static_cast<uint8_t>(0x01 | (edge ? 0x02 : 0) | (active_low ? 0x04 : 0) |
                                     (shared ? 0x08 : 0)));  // consumer
  out.push_back(1);  // one interrupt
  AppendLe(out, gsi, 4);
  return out;
}

}  // namespace passage::aml
