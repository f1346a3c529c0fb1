/**
 * Memory footprint per VM and per vCPU (tracking issue 4 §1, "cost of
 * growth"), measured in a fresh process so that no other VM's garbage is
 * collected in the middle of a reading:
 *
 * ```
 * deno run -A --v8-flags=--expose-gc bench/footprint.ts --vms K --ram BYTES --vcpus M [--wasm FILE]
 * ```
 *
 * prints one {@link FootprintResult} as JSON. Method: readings of
 * /proc/self/status (VmRSS: committed resident bytes; VmSize: reserved
 * address space) and `Deno.memoryUsage()` (V8 heap, external bytes), each
 * after a full GC, (0) before, (1) with K live VMs (createVm + a RAM region
 * of BYTES at GPA 0 + vCPU 0, each vCPU proved alive by running one HLT),
 * (2) after M more vCPUs in every VM (also each run to a HLT). Per VM =
 * (1 − 0) / K; per extra vCPU = (2 − 1) / (K × M). The reserved
 * WebAssembly.Memory bytes are `vm.memory.buffer.byteLength` (fixed at
 * createVm); a vCPU takes one of the MAX_VCPUS blocks that every VM's
 * memory already holds, so it reserves no new memory bytes.
 *
 * @module
 */
import { KVM_CONSTANTS as K } from "../src/abi/constants.ts";
import { VCPU_BLOCK_SIZE } from "../src/abi/memory_map.ts";
import type { Vcpu } from "../src/vcpu.ts";
import { createVm, type Vm } from "../src/vm.ts";
import { realSegment } from "../src/x86/regs.ts";

/** GPA of the one-byte HLT each vCPU runs to prove it is alive. */
export const PROOF_GPA = 0x1000;

/** What one footprint measurement found (bytes; per-VM and per-vCPU figures are averages). */
export interface FootprintResult {
  readonly vms: number;
  readonly ram_bytes: number;
  /** Extra vCPUs added to every VM after vCPU 0. */
  readonly extra_vcpus_per_vm: number;
  /** Whether a full GC ran before each reading (false: the numbers include collectable garbage). */
  readonly gc: boolean;
  readonly per_vm: {
    /** VmRSS delta: committed resident memory. */
    readonly rss_bytes: number;
    /** VmSize delta: address space reserved (V8 reserves guard regions around every wasm memory). */
    readonly address_space_bytes: number;
    /** WebAssembly.Memory byteLength (control block, vCPU blocks, RAM pool): reserved, sized once. */
    readonly wasm_memory_bytes: number;
    readonly heap_used_bytes: number;
    readonly external_bytes: number;
  };
  readonly per_vcpu: {
    readonly rss_bytes: number;
    readonly heap_used_bytes: number;
    /** New WebAssembly.Memory bytes per vCPU: 0 (the block is inside the memory reserved at createVm). */
    readonly wasm_memory_bytes: number;
    /** The size of the vCPU block it occupies (kvm_run mapping + state). */
    readonly block_bytes: number;
  };
}

interface Reading {
  rss: number;
  vmsize: number;
  heapUsed: number;
  external: number;
}

function statusKb(text: string, key: string): number {
  const m = text.match(new RegExp(`^${key}:\\s+(\\d+) kB$`, "m"));
  if (!m) throw new Error(`/proc/self/status has no ${key} line: cannot measure the footprint`);
  return Number(m[1]) * 1024;
}

function reading(gc: (() => void) | undefined): Reading {
  gc?.();
  gc?.();
  const status = Deno.readTextFileSync("/proc/self/status");
  const m = Deno.memoryUsage();
  return {
    rss: statusKb(status, "VmRSS"),
    vmsize: statusKb(status, "VmSize"),
    heapUsed: m.heapUsed,
    external: m.external,
  };
}

/** Run `vcpu` (reset state) to a HLT at {@link PROOF_GPA} in real mode; throws on any other exit. */
export function proveAlive(vm: Vm, vcpu: Vcpu): void {
  vm.writeGuest(PROOF_GPA, [0xf4]);
  vcpu.setSregs({ cs: realSegment(0, 0xb) });
  vcpu.setRegs({ rip: BigInt(PROOF_GPA) });
  const before = vcpu.instructions;
  const reason = vcpu.runRaw();
  if (reason !== K.KVM_EXIT_HLT || vcpu.instructions - before !== 1) {
    throw new Error(
      `vcpu ${vcpu.id}: the HLT at 0x${PROOF_GPA.toString(16)} gave exit ${reason} after ${
        vcpu.instructions - before
      } instructions: expected KVM_EXIT_HLT (${K.KVM_EXIT_HLT}) after 1`,
    );
  }
}

/** A VM with `ramBytes` of RAM at GPA 0 in slot 0 and vCPU 0, proved alive. */
export function liveVm(ramBytes: number, module?: WebAssembly.Module): Vm {
  const vm = createVm(module ? { ramPoolSize: ramBytes, module } : { ramPoolSize: ramBytes });
  vm.addMemoryRegion({ slot: 0, gpa: 0, size: ramBytes });
  proveAlive(vm, vm.addVcpu(0));
  return vm;
}

/** Measure (this process must be fresh for the figures to mean anything). */
export function measureFootprint(
  opts: { vms: number; ramBytes: number; extraVcpus: number; module?: WebAssembly.Module },
): FootprintResult {
  const { vms: k, ramBytes, extraVcpus: m } = opts;
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`footprint: ${k} VMs: expected an integer >= 1`);
  if (!Number.isInteger(m) || m < 1) throw new RangeError(`footprint: ${m} extra vCPUs: expected an integer >= 1`);
  const gc = (globalThis as { gc?: () => void }).gc;
  // Warm up: the core module is compiled and the first instance made before reading 0.
  liveVm(ramBytes, opts.module);
  const r0 = reading(gc);
  const live: Vm[] = [];
  for (let i = 0; i < k; i++) live.push(liveVm(ramBytes, opts.module));
  const r1 = reading(gc);
  for (const vm of live) for (let id = 1; id <= m; id++) proveAlive(vm, vm.addVcpu(id));
  const r2 = reading(gc);
  for (const vm of live) {
    if (vm.vcpus().length !== 1 + m) throw new Error(`a VM has ${vm.vcpus().length} vCPUs: expected ${1 + m}`);
  }
  const per = (a: number, b: number, n: number) => Math.round((b - a) / n);
  return {
    vms: k,
    ram_bytes: ramBytes,
    extra_vcpus_per_vm: m,
    gc: gc !== undefined,
    per_vm: {
      rss_bytes: per(r0.rss, r1.rss, k),
      address_space_bytes: per(r0.vmsize, r1.vmsize, k),
      wasm_memory_bytes: live[0]!.buffer.byteLength,
      heap_used_bytes: per(r0.heapUsed, r1.heapUsed, k),
      external_bytes: per(r0.external, r1.external, k),
    },
    per_vcpu: {
      rss_bytes: per(r1.rss, r2.rss, k * m),
      heap_used_bytes: per(r1.heapUsed, r2.heapUsed, k * m),
      wasm_memory_bytes: 0,
      block_bytes: VCPU_BLOCK_SIZE,
    },
  };
}

function argValue(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function intArg(args: readonly string[], name: string): number {
  const raw = argValue(args, name);
  const n = Number(raw);
  if (raw === undefined || !Number.isSafeInteger(n) || n < 1) {
    throw new RangeError(`footprint: ${name} ${JSON.stringify(raw)}: expected a positive integer`);
  }
  return n;
}

if (import.meta.main) {
  const args = Deno.args;
  const wasm = argValue(args, "--wasm");
  const module = wasm === undefined
    ? undefined
    : new WebAssembly.Module(Deno.readFileSync(wasm) as Uint8Array<ArrayBuffer>);
  const result = measureFootprint({
    vms: intArg(args, "--vms"),
    ramBytes: intArg(args, "--ram"),
    extraVcpus: intArg(args, "--vcpus"),
    ...(module ? { module } : {}),
  });
  console.log(JSON.stringify(result));
}
