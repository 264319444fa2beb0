// A small builder for ACPI Machine Language (ACPI 6.x spec, chapter 20):
// just the terms passage's DSDT uses. Each function returns the encoded
// bytes of one term; nest them as the ASL would be nested, e.g.
//   Scope("\\_SB_", {Device("COM1", {Name("_HID", EisaId("PNP0501"))})})
// Names are 1-4 characters per segment (padded with '_'), segments joined
// with '.', optionally prefixed with '\\' (root) or '^' (parent).
#ifndef PASSAGE_DEVICES_ACPI_AML_H_
#define PASSAGE_DEVICES_ACPI_AML_H_

#include <cstdint>
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

}  // namespace passage::aml

#endif  // PASSAGE_DEVICES_ACPI_AML_H_
