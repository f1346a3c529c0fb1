/**
 * Guards for tests that run guests on the host's /dev/kvm: the skip reason
 * (printed once), and a child-process runner with a hard kill timeout for
 * the cases known to hang KVM_RUN on this host (the in-process watchdog
 * interrupts them; the child's SIGKILL is the second line of defence).
 *
 * @module
 */
import { KvmSystem, kvmUnavailableReason } from "../../src/backends/kvm/mod.ts";

/** Why the kvm cases are skipped, or undefined when /dev/kvm works. */
export const NO_KVM: string | undefined = kvmUnavailableReason();
if (NO_KVM !== undefined) console.warn(`kvm backend tests skipped: ${NO_KVM}`);

let vaBits: 48 | 57 | undefined;
/**
 * KVM's max_host_virt_addr_bits() on this host: 57 when KVM_GET_SUPPORTED_CPUID has LA57
 * (leaf 7, ECX bit 16; KVM sets it from the hardware even when the host kernel runs 4-level
 * paging), else 48. KVM checks and canonicalises MSR values (FS/GS base, LSTAR, SYSENTER_ESP/EIP)
 * at this width, whatever the guest's CPUID or CR4.LA57 say; the simulator's host has no LA57
 * (4-level paging only), so it uses 48. Only where /dev/kvm works.
 */
export function kvmHostVaBits(): 48 | 57 {
  if (vaBits === undefined) {
    const sys = KvmSystem.open();
    try {
      const leaf7 = sys.supportedCpuid().find((e) => e.function === 7 && e.index === 0);
      vaBits = leaf7 !== undefined && ((leaf7.ecx >>> 16) & 1) === 1 ? 57 : 48;
    } finally {
      sys.close();
    }
  }
  return vaBits;
}

const ROOT = new URL("../../", import.meta.url).href;

/**
 * Run `body` (TypeScript; `ROOT` is the repository URL with a trailing slash)
 * in a child `deno eval`, killed with SIGKILL after `killMs`. Resolves with
 * its stdout, or rejects naming the timeout / exit code and stderr.
 */
export async function inChild(body: string, killMs: number): Promise<string> {
  const env = { ...Deno.env.toObject() };
  delete (env as Record<string, string | undefined>).RUST_BACKTRACE;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--quiet", `const ROOT = ${JSON.stringify(ROOT)};\n${body}`],
    env,
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let killed = false;
  const timer = setTimeout(() => {
    killed = true;
    child.kill("SIGKILL");
  }, killMs);
  const out = await child.output();
  clearTimeout(timer);
  const dec = new TextDecoder();
  if (killed) throw new Error(`child still running after ${killMs} ms: killed (stderr: ${dec.decode(out.stderr)})`);
  if (!out.success) throw new Error(`child exited ${out.code}: ${dec.decode(out.stderr)}`);
  return dec.decode(out.stdout);
}
