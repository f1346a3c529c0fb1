// CPUID from the VM's table (KVM_SET_CPUID2 → VMC_CPUID, VMC_NCPUID), with
// Linux arch/x86/kvm/cpuid.c kvm_cpuid() semantics: the entry matching the
// function (and the index when KVM_CPUID_FLAG_SIGNIFCANT_INDEX is set); a function
// with no entry that lies above its class's maximum (basic 0x0, extended
// 0x80000000, hypervisor 0x40000000 range, 0xc0000000) returns the entry of the
// maximum basic leaf (CPUID.0.EAX) with the same index — except for AMD/Hygon
// guest vendors, which get zeros (get_out_of_range_cpuid_entry); anything else
// returns all zeros (leaves 0xB/0x1F: ECX = index, EDX from sub-leaf 1 when present).
// Leaf 1 carries the bits kvm_update_cpuid_runtime() keeps in step with the vCPU:
// ECX.OSXSAVE = CR4.OSXSAVE, EDX.APIC = IA32_APIC_BASE.EN; and EBX[31:24], the
// initial APIC ID, is the vCPU id (the table is per VM here, per vCPU in KVM, where
// the VMM writes each vCPU's id).
import {
  CPUID_EAX, CPUID_EBX, CPUID_ECX, CPUID_EDX, CPUID_FLAGS, CPUID_FUNCTION, CPUID_INDEX, CPUID_SIZEOF,
  MAX_CPUID_ENTRIES, VMC_CPUID, VMC_NCPUID, VM_CONTROL_BASE, VS_APIC_BASE, VS_CR4, VS_VCPU_ID,
} from "../abi.generated";
import { S } from "../x86/cpu";

const CR4_OSXSAVE: u64 = 0x40000;
const APIC_BASE_EN: u64 = 0x800;
const ECX_OSXSAVE: u32 = 1 << 27;
const EDX_APIC: u32 = 1 << 9;

const KVM_CPUID_FLAG_SIGNIFCANT_INDEX: u32 = 1;

export let cpuidEax: u32 = 0;
export let cpuidEbx: u32 = 0;
export let cpuidEcx: u32 = 0;
export let cpuidEdx: u32 = 0;

/** Address of the entry for (fn, idx), or 0. */
export function findCpuid(fn: u32, idx: u32): usize {
  let n = <i32>load<u32>(VM_CONTROL_BASE + VMC_NCPUID);
  if (n > MAX_CPUID_ENTRIES) n = MAX_CPUID_ENTRIES;
  for (let i = 0; i < n; i++) {
    const e = <usize>(VM_CONTROL_BASE + VMC_CPUID + i * CPUID_SIZEOF);
    if (load<u32>(e + CPUID_FUNCTION) != fn) continue;
    if ((load<u32>(e + CPUID_FLAGS) & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) != 0 && load<u32>(e + CPUID_INDEX) != idx) continue;
    return e;
  }
  return 0;
}

function outOfRange(fn: u32, idx: u32): usize {
  const basic = findCpuid(0, 0);
  if (basic == 0) return 0;
  const ebx = load<u32>(basic + CPUID_EBX);
  if (ebx == 0x68747541 || ebx == 0x6f677948) return 0; // "Auth"enticAMD, "Hygo"nGenuine
  let cls: usize;
  if (fn >= 0x40000000 && fn <= 0x4fffffff) cls = findCpuid(fn & 0xffffff00, 0);
  else if (fn >= 0xc0000000) cls = findCpuid(0xc0000000, 0);
  else cls = findCpuid(fn & 0x80000000, 0);
  if (cls != 0 && fn <= load<u32>(cls + CPUID_EAX)) return 0;
  return findCpuid(load<u32>(basic + CPUID_EAX), idx);
}

/** Look up CPUID(fn, idx) into cpuidEax..cpuidEdx. */
export function cpuidLookup(fn: u32, idx: u32): void {
  let e = findCpuid(fn, idx);
  let leafFn = fn;
  if (e == 0) {
    e = outOfRange(fn, idx);
    if (e != 0) leafFn = load<u32>(e + CPUID_FUNCTION);
  }
  if (e == 0) {
    cpuidEax = 0; cpuidEbx = 0; cpuidEcx = 0; cpuidEdx = 0;
    if (fn == 0xb || fn == 0x1f) {
      // kvm_cpuid(): CL passes through and EDX is the x2APIC ID when the leaf exists (sub-leaf 1 does).
      const one = findCpuid(fn, 1);
      if (one != 0) { cpuidEcx = idx & 0xff; cpuidEdx = load<u32>(one + CPUID_EDX); }
    }
    return;
  }
  cpuidEax = load<u32>(e + CPUID_EAX);
  cpuidEbx = load<u32>(e + CPUID_EBX);
  cpuidEcx = load<u32>(e + CPUID_ECX);
  cpuidEdx = load<u32>(e + CPUID_EDX);
  if (leafFn == 1) {
    cpuidEcx = (load<u64>(S + VS_CR4) & CR4_OSXSAVE) != 0 ? cpuidEcx | ECX_OSXSAVE : cpuidEcx & ~ECX_OSXSAVE;
    cpuidEdx = (load<u64>(S + VS_APIC_BASE) & APIC_BASE_EN) != 0 ? cpuidEdx | EDX_APIC : cpuidEdx & ~EDX_APIC;
    cpuidEbx = (cpuidEbx & 0x00ffffff) | ((load<u32>(S + VS_VCPU_ID) & 0xff) << 24);
  }
}
