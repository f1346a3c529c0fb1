/**
 * The KVM_RUN watchdog: a POSIX timer (`timer_create`, CLOCK_MONOTONIC)
 * whose signal (WATCHDOG_SIGNAL, SIGWINCH) is directed at the thread that calls KVM_RUN
 * (SIGEV_THREAD_ID), armed before the ioctl and disarmed after. KVM sees the
 * pending signal and returns -EINTR (KVM_EXIT_INTR). A Deno listener is
 * installed while a vCPU can run so the signal interrupts KVM_RUN; a signal
 * that arrives after the listener is removed takes SIGWINCH's default action,
 * which is to be ignored.
 *
 * It cannot interrupt a host that loops inside the kernel without checking
 * for signals; tests run the known-hang cases in a child process as well
 * (tests/support/kvm_guard.ts).
 *
 * @module
 */
import { StructBuf } from "./codec.ts";
import { CLOCK_MONOTONIC, errno, libc, SIGEV_THREAD_ID, WATCHDOG_SIGNAL, WATCHDOG_SIGNAL_NAME } from "./libc.ts";
import { ITIMERSPEC, SIGEVENT } from "./uapi.ts";
import { KvmIoctlError } from "./errors.ts";

let listening = false;
const noop = () => {};
/** One timer per thread id (Deno runs JS of one isolate on one thread; Workers get theirs). */
const timers = new Map<number, Deno.PointerValue>();

function timerForThisThread(): Deno.PointerValue {
  const tid = libc().gettid();
  let t = timers.get(tid);
  if (t !== undefined) return t;
  const sev = new StructBuf(SIGEVENT);
  sev.set("sigev_signo", WATCHDOG_SIGNAL);
  sev.set("sigev_notify", SIGEV_THREAD_ID);
  sev.set("_sigev_un._tid", tid);
  const out = new BigUint64Array(1);
  if (libc().timer_create(CLOCK_MONOTONIC, sev.u8, new Uint8Array(out.buffer)) < 0) {
    throw new KvmIoctlError("timer_create", errno(), `CLOCK_MONOTONIC, ${WATCHDOG_SIGNAL_NAME} to thread ${tid}`);
  }
  t = Deno.UnsafePointer.create(out[0]!);
  timers.set(tid, t);
  return t;
}

function setTimer(ms: number): void {
  const spec = new StructBuf(ITIMERSPEC);
  spec.set("it_value.tv_sec", Math.floor(ms / 1000));
  spec.set("it_value.tv_nsec", Math.round((ms % 1000) * 1e6));
  if (libc().timer_settime(timerForThisThread(), 0, spec.u8, null) < 0) {
    throw new KvmIoctlError("timer_settime", errno(), `${ms} ms`);
  }
}

/** Arm the watchdog of the calling thread for `ms` milliseconds (> 0). */
export function armWatchdog(ms: number): void {
  if (!listening) {
    Deno.addSignalListener(WATCHDOG_SIGNAL_NAME, noop);
    listening = true;
  }
  setTimer(ms);
}

/** Disarm it (a zero it_value stops the timer). */
export function disarmWatchdog(): void {
  setTimer(0);
}

/** Disarm and remove the signal listener (so `deno test`'s sanitizers see no open listener). */
export function releaseWatchdog(): void {
  if (!listening) return;
  disarmWatchdog();
  Deno.removeSignalListener(WATCHDOG_SIGNAL_NAME, noop);
  listening = false;
}
