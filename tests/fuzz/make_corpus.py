#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into tests/fuzz/corpus/TARGET/.

Each seed is a small, meaningful input in the target's own format (see the
comment at the top of each *_fuzz.cc): a well-formed case the fuzzer can
mutate from, plus the known awkward ones. Re-run after changing a target's
input format; the output is deterministic.
    python3 tests/fuzz/make_corpus.py
"""
import os
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus")


def u16(v):
    return struct.pack("<H", v)


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


# --- virtqueue: byte 0 log2(queue size), then the rings at 0x10000 --------
def virtqueue():
    def ring(qsize_log2, descs, avail):
        qs = 1 << qsize_log2
        table = bytearray(16 * qs)
        for i, (addr, length, flags, nxt) in enumerate(descs):
            table[16 * i:16 * i + 16] = u64(addr) + u32(length) + u16(flags) + u16(nxt)
        avail_ring = u16(0) + u16(len(avail)) + b"".join(u16(a) for a in avail)
        avail_ring += b"\0" * (2 * qs - 2 * len(avail))
        return bytes([qsize_log2]) + bytes(table) + avail_ring

    NEXT, WRITE, INDIRECT = 1, 2, 4
    return {
        "one-writable-buffer": ring(2, [(0x20000, 64, WRITE, 0)], [0]),
        "chain-read-then-write": ring(2, [(0x20000, 16, NEXT, 1), (0x21000, 512, WRITE, 0)], [0]),
        "chain-loop": ring(2, [(0x20000, 16, NEXT, 1), (0x21000, 16, NEXT, 0)], [0]),
        "indirect-table": ring(3, [(0x10000, 32, INDIRECT, 0)], [0]),
        "avail-index-ahead": ring(2, [(0x20000, 8, WRITE, 0)], [0, 9, 0xffff]),
    }


# --- steps of 14 bytes: kind, size (1 << n), address u32, value u64 -------
def step(kind, size_log2, addr, value, write):
    return bytes([kind | (0x80 if write else 0), size_log2]) + u32(addr) + u64(value)


def pci_access():
    cfg = lambda slot, fn, reg: 0x80000000 | slot << 11 | fn << 8 | reg
    ecam = lambda slot, fn, reg: slot << 15 | fn << 12 | reg
    return {
        "port-read-ids": step(0, 2, 0, cfg(3, 0, 0), True) + step(0, 2, 4, 0, False),
        "ecam-size-bar": step(1, 2, ecam(3, 0, 0x10), 0xffffffff, True) + step(1, 2, ecam(3, 0, 0x10), 0, False)
        + step(1, 2, ecam(3, 1, 0x14), 0xffffffff, True) + step(1, 2, ecam(3, 1, 0x14), 0, False),
        "ecam-enable-and-poke-bars": step(1, 1, ecam(3, 0, 4), 0x7, True) + step(1, 1, ecam(3, 1, 4), 0x7, True)
        + step(3, 2, 0x14, 0x0f, True) + step(3, 1, 0x16, 0, True) + step(2, 2, 0, 0, False),
        "ring-memory": step(5, 3, 0x1000, 0x0000000100020000, True) + step(3, 2, 0x3000, 1, True),
    }


def device_config():
    return {
        "virtio-rng-addr": b"virtio-rng-pci,id=rng0,addr=3.1",
        "vfio-host": b"vfio-pci,host=0000:00:04.0,iommufd=iommufd0,id=nvme0",
        "vfio-sysfsdev": b"vfio-pci,sysfsdev=/sys/bus/pci/devices/0000:00:04.0,id=d,addr=1f.7",
        "vfio-fd": b"vfio-pci,fd=3,iommufd=i0",
        "escaped-comma": b"virtio-rng-pci,filename=/tmp/a,,b,id=r",
    }


# --- qmp: byte 0 read length - 1 (bits 0-3), bit 7 negotiate; byte 1 fds
# per read, 2 bits per read, cycling; then the stream -----------------------
def qmp():
    def s(chunk, negotiate, fds, text):
        return bytes([(chunk - 1) | (0x80 if negotiate else 0), fds]) + text

    return {
        "negotiate-and-query": s(16, False, 0, b'{"execute": "qmp_capabilities"}\n{"execute": "query-status"}\n'
                                 b'{"execute": "query-commands", "id": 7}'),
        "getfd-device-add": s(16, True, 0b00000001,
                              b'{"execute": "getfd", "arguments": {"fdname": "rng"}}'
                              b'{"execute": "device_add", "arguments": {"driver": "virtio-rng-pci", "id": "r0", '
                              b'"fd": "rng"}}{"execute": "closefd", "arguments": {"fdname": "rng"}}'),
        "add-fd-object-add": s(16, True, 0b00000101,
                               b'{"execute": "add-fd", "arguments": {"fdset-id": 1, "opaque": "x"}}'
                               b'{"execute": "query-fdsets"}{"execute": "object-add", "arguments": '
                               b'{"qom-type": "iommufd", "id": "i0", "fd": "3"}}'
                               b'{"execute": "remove-fd", "arguments": {"fdset-id": 1}}'),
        "fds-with-bad-json": s(4, True, 0b11111111, b'{"execute": ]\n[1, 2]\n{"execute": "nope"}\n"str" 12 }'),
        "fds-split-message": s(3, True, 0b01010101, b'{"execute": "getfd", "arguments": {"fdname": "a\\"b"}}'),
        "device-del-pasid": s(16, True, 0, b'{"execute": "device_del", "arguments": {"id": "x"}}'
                              b'{"execute": "x-passage-pasid-bind", "arguments": {"pasid": 1, "object": "i0"}}'
                              b'{"execute": "system_powerdown"}{"execute": "stop"}{"execute": "cont"}'),
    }


def cmdline():
    argv = lambda *a: b"\0".join(x.encode() for x in a)
    return {
        "passthrough": argv("-m", "1G", "-smp", "2", "-kernel", "bzImage", "-initrd", "initrd.img", "-append",
                            "console=ttyS0", "-object", "iommufd,id=iommufd0", "-device",
                            "vfio-pci,host=0000:00:04.0,iommufd=iommufd0"),
        "all-by-fd": argv("-accel", "kvm,fd=5", "-object", "iommufd,id=i0,fd=3", "-device",
                          "vfio-pci,fd=4,iommufd=i0", "-kernel", "k", "--report-resources"),
        "monitors": argv("-kernel", "k", "-qmp", "unix:/tmp/q.sock,server=on,wait=off", "-chardev",
                         "socket,id=m0,path=/tmp/m.sock,server=on,wait=off", "-mon", "chardev=m0,mode=control"),
        "qemu-spellings": argv("--kernel=k", "-m", "size=512M", "-smp", "cpus=2", "-cpu", "host,-x2apic",
                               "-serial", "file:out.txt", "-nographic", "-enable-kvm", "-no-reboot",
                               "--report-timing", "-timing-marker", "init", "-entry", "auto"),
        # What fuzz_cmdline found (errors of two lines), kept as regression seeds.
        "found-newlines": argv("-m", "1\n", "-object", "iommufd,id=a\nb,hot=1", "-kernel", "k"),
        "legacy-and-rng": argv("-kernel", "k", "-device", "vfio-pci,sysfsdev=/sys/bus/pci/devices/0000:00:05.0",
                               "-device", "virtio-rng-pci,addr=3,id=rng0", "-dump-dtb", "x.dtb"),
    }


# --- bzimage: 8 bytes of parameters, then the image -----------------------
def bzimage_image(setup_sects=1, version=0x020f, kernel=b"\x90" * 512, init_size=None,
                  pref_address=0x1000000, relocatable=1, align=0x200000, initrd_addr_max=0x7fffffff,
                  cmdline_size=2047, xloadflags=0x3, loadflags=0x1, header_len=0x264 - 0x202):
    setup = bytearray(512 * (setup_sects + 1))
    syssize = (len(kernel) + 15) // 16
    setup[0x1f1] = setup_sects
    setup[0x1f4:0x1f8] = u32(syssize)
    setup[0x1fe:0x200] = u16(0xaa55)
    setup[0x200] = 0xeb
    setup[0x201] = header_len
    setup[0x202:0x206] = b"HdrS"
    setup[0x206:0x208] = u16(version)
    setup[0x211] = loadflags
    setup[0x22c:0x230] = u32(initrd_addr_max)
    setup[0x230:0x234] = u32(align)
    setup[0x234] = relocatable
    setup[0x236:0x238] = u16(xloadflags)
    setup[0x238:0x23c] = u32(cmdline_size)
    setup[0x258:0x260] = u64(pref_address)
    setup[0x260:0x264] = u32(init_size if init_size is not None else 0x2000000)
    return bytes(setup) + kernel.ljust(syssize * 16, b"\0")


def bzimage():
    def params(ram_mib_over_16, initrd, shift=0, entry=0, append_61=1):
        return u16(ram_mib_over_16) + u32(initrd) + bytes([shift | entry << 5, append_61])

    img = bzimage_image()
    return {
        "bzimage-no-initrd": params(112, 0) + img,
        "bzimage-initrd-64k": params(112, 65536) + img,
        "bzimage-initrd-too-big": params(0, 0x3000000) + img,
        "bzimage-above-pci-hole": params(4096, 0x100000, shift=4) + img,
        "bzimage-cmdline-too-long": params(112, 0, append_61=200) + bzimage_image(cmdline_size=255),
        "bzimage-not-relocatable-low": params(112, 4096) + bzimage_image(relocatable=0, pref_address=0x100000),
        "bzimage-huge-init-size": params(112, 4096) + bzimage_image(init_size=0xfffff000),
        "flat-real-mode": params(0, 0, entry=1, append_61=0) + b"\xf4" * 64,
        "boot-sector-no-hdrs": params(0, 0) + b"\0" * 0x1fe + u16(0xaa55) + b"\0" * 16,
        # The fuzzer's find: an image that ends right after "HdrS" (the
        # version at 0x206 was read past the end).
        "hdrs-cut-before-version": params(112, 0, append_61=200) + img[:0x206],
    }


# --- acpi_hotplug: steps of 7 bytes: kind, size, port - 0x600, value u32 --
def acpi_hotplug():
    def s(kind, size_log2, port, value, write=False):
        return bytes([kind | (0x80 if write else 0), size_log2, port - 0x600]) + u32(value)

    added, eject_req, power = 5, 6, 7
    ged, pm = 0x610, 0x600
    return {
        "device-check-then-clear": s(added, 0, 0x600, 3) + s(0, 2, ged, 0) + s(0, 2, ged + 4, 0)
        + s(0, 2, ged + 4, 1 << 3, True) + s(0, 2, ged, 0),
        "eject-request-then-eject": s(eject_req, 0, 0x600, 5) + s(0, 2, ged, 0) + s(0, 2, ged + 8, 0)
        + s(0, 2, ged + 0xc, 5, True) + s(0, 2, ged + 8, 0),
        "power-button-and-s5": s(power, 0, 0x600, 0) + s(0, 2, ged, 0) + s(0, 2, ged, 2, True)
        + s(0, 0, pm, 0x34, True),
        "odd-sizes-and-reset": s(added, 0, 0x600, 31) + s(0, 0, ged, 0) + s(0, 1, ged + 4, 0xffff, True)
        + s(0, 3, ged + 0xc, 31, True) + s(0, 0, pm + 2, 1, True) + s(0, 1, pm + 1, 0x0100, True),
        "bad-slots": s(added, 0, 0x600, 0) + s(added, 0, 0x600, 32) + s(eject_req, 0, 0x600, 255)
        + s(0, 2, ged + 0xc, 0, True) + s(0, 2, ged + 0xc, 32, True),
    }


# --- vfio_pci: 4 header bytes, pokes of 3 bytes, steps of 14 bytes --------
def vfio_pci():
    ecam = lambda reg: reg  # case 1: the device's function 0 at a % 4096
    bar = lambda index, offset: index | offset << 3  # case 2: BAR `index` (6: ROM), offset into it
    MMAP, MSIX_MMAP, ROM, RESET = 1, 2, 4, 8

    def hdr(flags=MMAP | RESET, msix=8, msi=4, pokes=b""):
        return bytes([flags, msix, msi, len(pokes) // 3]) + pokes

    def poke(off, value):
        return u16(off) + bytes([value])

    enable = step(5, 0, 0, 0x7, True)  # memory + I/O decode, bus master
    msix_on = step(1, 1, ecam(0x42), 0x8000, True)
    vector0 = (step(2, 2, bar(0, 0x2000), 0xfee00000, True) + step(2, 2, bar(0, 0x2004), 0, True)
               + step(2, 2, bar(0, 0x2008), 0x41, True) + step(2, 2, bar(0, 0x200c), 0, True))
    walk = b"".join(step(1, 0, ecam(r), 0, False) for r in (0x34, 0x40, 0x41, 0x60, 0x61, 0xa0, 0xa1))
    return {
        "identity-and-walk": hdr() + step(1, 2, ecam(0), 0, False) + walk + step(1, 2, ecam(0x100), 0, False),
        "size-and-move-bars": hdr() + step(1, 2, ecam(0x10), 0xffffffff, True) + step(1, 2, ecam(0x10), 0, False)
        + step(1, 2, ecam(0x14), 0xffffffff, True) + step(1, 2, ecam(0x10), 0xc0100000, True)
        + step(1, 2, ecam(0x18), 0xffffffff, True) + step(1, 2, ecam(0x20), 0xffffffff, True)
        + enable + step(1, 2, ecam(0x20), 0xc0000000, True) + step(1, 2, ecam(0x24), 0, True),
        "msix-table-and-pba": hdr() + enable + msix_on + vector0 + step(2, 2, bar(0, 0x3000), 0, False)
        + step(1, 1, ecam(0x42), 0xc000, True) + step(1, 1, ecam(0x42), 0x0000, True),
        "msix-table-mmapable-no-mmap": hdr(flags=MSIX_MMAP | ROM) + enable + msix_on + vector0
        + step(1, 2, ecam(0x30), 0xffffffff, True) + step(1, 2, ecam(0x30), 0xc0200001, True)
        + step(2, 2, bar(6, 0), 0, False),
        "msi-enable-64bit": hdr(msix=0) + enable + step(1, 2, ecam(0xa4), 0xfee00000, True)
        + step(1, 2, ecam(0xa8), 0, True) + step(1, 1, ecam(0xac), 0x41, True)
        + step(1, 2, ecam(0xb0), 0xe, True) + step(1, 1, ecam(0xa2), 0x0051, True),
        "io-bar-and-intx": hdr(msix=0, msi=0) + enable + step(2, 0, bar(2, 0), 0x5a, True)
        + step(2, 1, bar(2, 6), 0, False) + step(1, 1, ecam(4), 0x0407, True),
        "cap-loop": hdr(pokes=poke(0x61, 0x40)) + walk,
        "cap-pointer-out-of-range": hdr(pokes=poke(0x41, 0xff) + poke(0x51, 0x03) + poke(0x103, 0x10)) + walk,
        "msix-table-in-missing-bar": hdr(pokes=poke(0x44, 0x05) + poke(0x42, 0xff) + poke(0x43, 0x07))
        + enable + msix_on,
    }


def main():
    targets = {
        "virtqueue": virtqueue(), "pci_access": pci_access(), "device_config": device_config(),
        "qmp": qmp(), "cmdline": cmdline(), "bzimage": bzimage(), "acpi_hotplug": acpi_hotplug(),
        "vfio_pci": vfio_pci(),
    }
    total = files = 0
    for target, seeds in targets.items():
        d = os.path.join(OUT, target)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
            total += len(data)
            files += 1
    print(f"make_corpus: {files} seeds, {total} bytes, in {OUT}")


if __name__ == "__main__":
    main()
