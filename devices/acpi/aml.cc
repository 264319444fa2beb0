#include "devices/acpi/aml.h"

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
constexpr uint8_t kExtOpPrefix = 0x5b, kDeviceOp = 0x82;
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

}  // namespace passage::aml
