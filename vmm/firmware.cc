#include "vmm/firmware.h"

namespace passage {

std::vector<uint8_t> ResetVectorStub() {
  return {
      0xb0, 0xfe,  // mov al, 0xfe   (i8042 command: pulse the reset line)
      0xe6, 0x64,  // out 0x64, al
      0xfa,        // cli
      0xf4,        // hlt            (not reached: the write ends the VM)
      0xeb, 0xfd,  // jmp short hlt
  };
}

absl::Status WriteResetVectorStub(GuestMemory& memory) {
  return memory.Write(kResetVectorAddr, ResetVectorStub());
}

}  // namespace passage
