/**
 * `kvmsim run dirty-log`: a memory region with KVM_MEM_LOG_DIRTY_PAGES; the
 * guest writes a few of its pages in two rounds, ringing a doorbell port
 * after each, and the host reads KVM_GET_DIRTY_LOG (cleared on every read).
 *
 * @module
 */
import { type BusDevice, createVmWithOneVcpu, KVM_CONSTANTS, PAUSE } from "../mod.ts";
import { assemble } from "../src/asm/x86.ts";
import type { Scenario } from "../src/cli/scenario.ts";

const LOAD = 0x1000;
const REGION = 0x4000_0000; // 1 GiB: inside the 4 GiB identity map, outside RAM
const PAGES = 16;
const DOORBELL = 0x80;

const GUEST = `
bits 64
  mov rbx, ${REGION}
  mov byte [rbx + 0 * 4096], 1
  mov byte [rbx + 3 * 4096], 1
  mov qword [rbx + 5 * 4096 + 8], 2
  mov qword [rbx + 15 * 4096 + 4088], 3
  out ${DOORBELL}, al                ; round 1 done
  mov byte [rbx + 1 * 4096], 1
  mov eax, [rbx + 3 * 4096]          ; a read does not dirty a page
  out ${DOORBELL}, al                ; round 2 done
  hlt
`;

/** Pauses the run on every write, so the host can look at the dirty log. */
class Doorbell implements BusDevice {
  readonly name = "doorbell";
  read(_o: number, data: Uint8Array): void {
    data.fill(0);
  }
  write() {
    return PAUSE;
  }
}

/** Page numbers whose bit is set in a KVM_GET_DIRTY_LOG bitmap. */
function dirtyPages(bitmap: Uint8Array): number[] {
  const pages: number[] = [];
  bitmap.forEach((byte, i) => {
    for (let b = 0; b < 8; b++) if (byte & (1 << b)) pages.push(i * 8 + b);
  });
  return pages;
}

export const scenario: Scenario = {
  name: "dirty-log",
  description:
    "a KVM_MEM_LOG_DIRTY_PAGES slot: guest writes pages in two rounds, host reads KVM_GET_DIRTY_LOG after each",
  run(ctx) {
    const code = assemble(GUEST, { bits: 64, origin: LOAD }).bytes;
    const { vm, vcpu } = createVmWithOneVcpu({ mode: "long", code, load: LOAD });
    const region = vm.addMemoryRegion({
      slot: 1,
      gpa: REGION,
      pages: PAGES,
      flags: KVM_CONSTANTS.KVM_MEM_LOG_DIRTY_PAGES,
    });
    vm.pio.insert(new Doorbell(), DOORBELL, 1);
    ctx.log(`slot 1: gpa 0x${region.gpa.toString(16)}, ${PAGES} pages, flags KVM_MEM_LOG_DIRTY_PAGES`);

    const rounds: number[][] = [];
    for (let round = 1;; round++) {
      const result = vm.runUntil(vcpu, { maxExits: 100 });
      const pages = dirtyPages(vm.getDirtyLog(1));
      rounds.push(pages);
      ctx.log(`round ${round} (${result.stop.kind}): dirty pages [${pages.join(", ")}]`);
      if (result.stop.kind !== "pause") {
        if (result.stop.kind !== "hlt") throw new Error(`dirty-log guest stopped with ${result.stop.kind}`);
        break;
      }
    }
    const got = JSON.stringify(rounds);
    const want = JSON.stringify([[0, 3, 5, 15], [1], []]);
    if (got !== want) throw new Error(`dirty-log: rounds ${got}, expected ${want}`);
    ctx.log(`page 15 holds 0x${vm.read64(REGION + 15 * 4096 + 4088).toString(16)}, written through the identity map`);
  },
};
