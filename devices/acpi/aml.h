// A small builder for ACPI Machine Language (ACPI 6.x spec, chapter 20):
// just the terms passage's DSDT uses. Each function returns the encoded
// bytes of one term; nest them as the ASL would be nested, e.g.
//   Scope("\\_SB_", {Device("COM1", {Name("_HID", EisaId("PNP0501"))})})
// Names are 1-4 characters per segment (padded with '_'), segments joined
// with '.', optionally prefixed with '\\' (root) or '^' (parent).
#ifndef PASSAGE_DEVICES_ACPI_AML_H_
#define PASSAGE_DEVICES_ACPI_AML_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace passage::aml {

using Bytes = std::vector<uint8_t>;

// PkgLength (20.2.4) for a package whose contents after the PkgLength are
// `payload` bytes long; the encoding counts its own bytes.
Bytes PkgLength(size_t payload);

// NameString (20.2.2). Fails on an empty or malformed path.
absl::StatusOr<Bytes> NameString(absl::string_view path);

// Integer constants: ZeroOp/OneOp/OnesOp, or Byte/Word/DWord/QWordConst.
Bytes Integer(uint64_t value);
// String constant (ASCII without NUL).
Bytes String(absl::string_view text);
// EISAID("PNP0501") as the DWordConst the ASL compiler emits. Fails on a
// malformed ID (three capital letters, four hex digits).
absl::StatusOr<Bytes> EisaId(absl::string_view id);

// Named objects and scopes. `path` must be a valid NameString; these abort
// with a Status instead of emitting garbage.
absl::StatusOr<Bytes> Name(absl::string_view path, const Bytes& value);
absl::StatusOr<Bytes> Scope(absl::string_view path, const std::vector<Bytes>& terms);
absl::StatusOr<Bytes> Device(absl::string_view path, const std::vector<Bytes>& terms);

// Package(){elements...} (at most 255 elements).
absl::StatusOr<Bytes> Package(const std::vector<Bytes>& elements);
// Buffer(){bytes...}
Bytes Buffer(const Bytes& data);

// Resource descriptors (6.4) and ResourceTemplate(){...}, which appends the
// end tag and wraps the descriptors in a Buffer.
Bytes IoPort(uint16_t min, uint16_t max, uint8_t alignment, uint8_t length);  // IO(Decode16,..)
Bytes IrqNoFlags(uint8_t irq);                                              // IRQNoFlags(){irq}
Bytes Memory32Fixed(bool writable, uint32_t base, uint32_t length);
Bytes ResourceTemplate(const std::vector<Bytes>& descriptors);
// Address space descriptors (6.4.3.5) as a bridge produces them: fixed
// [min, max], positive decode, no translation. WordBusNumber(..),
// WordIO(.., EntireRange), DWordMemory/QWordMemory(.., ReadWrite) with
// Cacheable (prefetchable windows) or NonCacheable.
Bytes WordBusNumber(uint16_t min, uint16_t max);
Bytes WordIo(uint16_t min, uint16_t max);
Bytes DWordMemory(bool cacheable, uint32_t min, uint32_t max);
Bytes QWordMemory(bool cacheable, uint64_t min, uint64_t max);

// --- Control methods and their terms (20.2.5) -------------------------------
// Method(path, args, Serialized|NotSerialized){terms}; 0..7 arguments.
absl::StatusOr<Bytes> Method(absl::string_view path, int args, bool serialized,
                             const std::vector<Bytes>& terms);
// Local0..Local7 and Arg0..Arg6; any other n gives no bytes at all.
Bytes Local(int n);
Bytes Arg(int n);
// A reference to a named object (a field, a device, a method taking no
// arguments): its NameString.
absl::StatusOr<Bytes> Ref(absl::string_view path);
// Store(value, target): `target` a Local, an Arg or a Ref.
Bytes Store(const Bytes& value, const Bytes& target);
// And(a, b, target) and Or(a, b, target); without a target the result is
// only the term's value.
Bytes And(const Bytes& a, const Bytes& b, const Bytes& target = {});
Bytes Or(const Bytes& a, const Bytes& b, const Bytes& target = {});
// LEqual(a, b), LNot(a) (LNotEqual is LNot(LEqual(..))).
Bytes LEqual(const Bytes& a, const Bytes& b);
Bytes LNot(const Bytes& a);
// If(predicate){terms}, and Else{terms} to follow it directly.
Bytes If(const Bytes& predicate, const std::vector<Bytes>& terms);
Bytes Else(const std::vector<Bytes>& terms);
// Return(value).
Bytes Return(const Bytes& value);
// CreateDWordField(source, byte_index, name): a 32-bit field of a buffer.
absl::StatusOr<Bytes> CreateDWordField(const Bytes& source, uint64_t byte_index,
                                       absl::string_view name);
// ToUUID("...") as the 16-byte Buffer iasl emits (the first three fields
// little-endian). Fails on a malformed UUID string.
absl::StatusOr<Bytes> Uuid(absl::string_view uuid);
// Notify(object, value): `object` a Ref.
Bytes Notify(const Bytes& object, const Bytes& value);

// --- Operation regions and fields (19.6.100, 19.6.48) -----------------------
enum class RegionSpace : uint8_t { kSystemMemory = 0, kSystemIo = 1 };
enum class FieldAccess : uint8_t { kAny = 0, kByte = 1, kWord = 2, kDWord = 3 };
enum class FieldUpdate : uint8_t { kPreserve = 0, kWriteAsOnes = 1, kWriteAsZeros = 2 };
// OperationRegion(path, space, offset, length).
absl::StatusOr<Bytes> OperationRegion(absl::string_view path, RegionSpace space, uint64_t offset,
                                      uint64_t length);
// One field unit: a name (1-4 characters) and its width in bits; an empty
// name is a reserved gap of that width (Offset()/", 32" in ASL).
struct FieldUnit {
  std::string name;
  uint32_t bits = 0;
};
// Field(region, access, NoLock, update){units}.
absl::StatusOr<Bytes> Field(absl::string_view region, FieldAccess access, FieldUpdate update,
                            const std::vector<FieldUnit>& units);

// Interrupt(ResourceConsumer, Level|Edge, ActiveHigh|ActiveLow,
// Exclusive|Shared){gsi}: the Extended Interrupt Descriptor (6.4.3.6), the
// form a GSI above the ISA range (and any _CRS Linux must take as written)
// needs.
Bytes ExtendedInterrupt(bool edge, bool active_low, bool shared, uint32_t gsi);

}  // namespace passage::aml

#endif  // PASSAGE_DEVICES_ACPI_AML_H_
